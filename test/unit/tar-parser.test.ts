import { describe, expect, it } from 'vitest';
import { TarFormatError, TarParser, UnsupportedEntryError, type TarEntry } from '../../src/layers/tar-parser.js';

/** A raw 512-byte header: the fields the parser reads, checksummed. */
function header(f: { name: string; type: string; size?: number; uid?: number | Buffer; prefix?: string; gnu?: boolean; mode?: number; linkname?: string }): Buffer {
  const b = Buffer.alloc(512);
  b.write(f.name, 0, 100, 'utf8');
  b.write(`${(f.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100, 'latin1');
  if (Buffer.isBuffer(f.uid)) f.uid.copy(b, 108);
  else b.write(`${(f.uid ?? 0).toString(8).padStart(7, '0')}\0`, 108, 'latin1');
  b.write('0000000\0', 116, 'latin1');
  b.write(`${(f.size ?? 0).toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  b.write('14620251735\0', 136, 'latin1');
  b.write(f.type, 156, 'latin1');
  if (f.linkname) b.write(f.linkname, 157, 100, 'utf8');
  if (f.gnu) b.write('ustar  \0', 257, 'latin1');
  else b.write('ustar\x0000', 257, 'latin1');
  if (f.prefix) b.write(f.prefix, 345, 155, 'utf8');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

function body(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len += 1;
  return Buffer.concat([Buffer.from(String(len)), rest]);
}

function parse(tar: Buffer, pieceSize = tar.length): { entries: TarEntry[]; data: string[] } {
  const entries: TarEntry[] = [];
  const data: string[] = [];
  const parser = new TarParser({ entry: (e) => (entries.push(e), data.push('')), data: (c) => (data[data.length - 1] += c.toString('latin1')), entryEnd: () => undefined });
  for (let i = 0; i < tar.length; i += pieceSize) parser.push(tar.subarray(i, i + pieceSize));
  parser.end();
  return { entries, data };
}

const END = Buffer.alloc(1024);

describe('TarParser', () => {
  const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xc0, 0xff, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const pax = Buffer.concat([paxRecord('SCHILY.xattr.security.capability', cap), paxRecord('path', Buffer.from(`${'p'.repeat(150)}/ünïcode.txt`)), paxRecord('mtime', Buffer.from('1700000000.5'))]);
  const longName = `${'l'.repeat(120)}/gnu-long-name`;
  const tar = Buffer.concat([
    header({ name: 'PaxHeader', type: 'x', size: pax.length }),
    body(pax),
    header({ name: 'short', type: '0', size: 5 }),
    body(Buffer.from('hello')),
    header({ name: '././@LongLink', type: 'L', size: longName.length + 1, gnu: true }),
    body(Buffer.from(`${longName}\0`)),
    header({ name: 'truncated', type: '0', size: 3, gnu: true }),
    body(Buffer.from('abc')),
    header({ name: 'file', prefix: 'usr/share', type: '0', size: 0 }),
    header({ name: 'big-uid', type: '5', uid: Buffer.from([0x80, 0, 0, 0, 0, 0x01, 0x86, 0xa0]) }),
    header({ name: 'hard', type: '1', linkname: 'short', size: 999 }),
    END,
  ]);

  it('reads pax (binary xattr values kept byte for byte, path, fractional mtime), GNU long names, ustar prefixes and base-256 numbers', () => {
    const { entries, data } = parse(tar);
    expect(entries.map((e) => [e.name, e.type, e.size])).toEqual([
      [`${'p'.repeat(150)}/ünïcode.txt`, 'file', 5],
      [longName, 'file', 3],
      ['usr/share/file', 'file', 0],
      ['big-uid', 'directory', 0],
      ['hard', 'hardlink', 0],
    ]);
    expect(entries[0]?.xattrs.get('security.capability')).toEqual(cap);
    expect(entries[0]?.mtime).toBe(1700000000.5);
    expect(entries[1]?.mtime).toBe(0o14620251735);
    expect(entries[3]?.uid).toBe(100000);
    expect(entries[4]?.linkname).toBe('short');
    expect(data.slice(0, 2)).toEqual(['hello', 'abc']);
  });

  it('gives the same result whatever the chunking (one byte at a time, odd sizes)', () => {
    const whole = parse(tar);
    for (const size of [1, 7, 511, 513, 4096]) expect(parse(tar, size)).toEqual(whole);
  });

  it('refuses a bad checksum, an unsupported type, an oversized pax header and a truncated stream', () => {
    const bad = Buffer.from(tar);
    bad[512 * 2 + 1] = 0x41;
    expect(() => parse(bad)).toThrow(new TarFormatError('invalid tar header at offset 1024: checksum mismatch', 1024));
    expect(() => parse(Buffer.concat([header({ name: 'sparse', type: 'S' }), END]))).toThrow(UnsupportedEntryError);
    expect(() => parse(Buffer.concat([header({ name: 'sparse', type: 'S' }), END]))).toThrow("unsupported tar entry type 'S'");
    expect(() => parse(Buffer.concat([header({ name: 'x', type: 'x', size: 2 << 20 })]))).toThrow('invalid tar header at offset 0: a 2097152-byte extended header is too large');
    expect(() => parse(tar.subarray(0, 1500))).toThrow('the tar stream ends in the middle of an entry (after 1500 bytes)');
  });

  it('accepts a stream that ends cleanly between entries without the end-of-archive blocks, and ignores what follows them', () => {
    expect(parse(Buffer.concat([header({ name: 'a', type: '0' })])).entries).toHaveLength(1);
    expect(parse(Buffer.concat([header({ name: 'a', type: '0' }), END, Buffer.alloc(10240)])).entries).toHaveLength(1);
  });
});
