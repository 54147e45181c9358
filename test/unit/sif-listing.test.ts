import { describe, expect, it } from 'vitest';
import { goTime, readableSize } from '../../src/image/sif/sif-listing.js';
import { parseSif } from '../../src/image/sif/read-sif.js';

describe('siftool number formats', () => {
  it('sizes: bytes under 1 KiB, else the nearest whole unit, halves away from zero (Go math.Round)', () => {
    expect(readableSize(0)).toBe('0 B');
    expect(readableSize(1023)).toBe('1023 B');
    expect(readableSize(1024)).toBe('1 KiB');
    expect(readableSize(1535)).toBe('1 KiB');
    expect(readableSize(1536)).toBe('2 KiB');
    expect(readableSize(28080)).toBe('27 KiB');
    expect(readableSize(1024 * 1024 - 1)).toBe('1024 KiB');
    expect(readableSize(1024 * 1024)).toBe('1 MiB');
    expect(readableSize(3 * 1024 ** 3 + 512 * 1024 ** 2)).toBe('4 GiB');
  });

  it("times as Go prints a UTC time.Time", () => {
    expect(goTime(1590175859n)).toBe('2020-05-22 19:30:59 +0000 UTC');
    expect(goTime(0n)).toBe('1970-01-01 00:00:00 +0000 UTC');
  });
});

describe('parseSif header checks', () => {
  const header = (fill: (b: Buffer) => void): Buffer => {
    const b = Buffer.alloc(128);
    b.write('SIF_MAGIC\0', 32, 'latin1');
    b.write('01\0', 42, 'latin1');
    fill(b);
    return b;
  };

  it('a negative count or offset', () => {
    const r = parseSif('x.sif', header((b) => b.writeBigInt64LE(-1n, 88)), 128);
    expect(r.ok ? undefined : [r.error.reason, r.error.message]).toEqual(['sif-truncated', 'x.sif: the SIF global header holds a negative or impossible count, offset or size']);
  });

  it('more free descriptors than there are', () => {
    const r = parseSif('x.sif', header((b) => {
      b.writeBigInt64LE(5n, 80);
      b.writeBigInt64LE(4n, 88);
    }), 128);
    expect(r.ok ? undefined : r.error.message).toBe('x.sif: the SIF global header says 4 descriptors (5 free), which no SIF file has');
  });

  it('a descriptor table smaller than its descriptors', () => {
    const r = parseSif('x.sif', header((b) => {
      b.writeBigInt64LE(2n, 88);
      b.writeBigInt64LE(128n, 96);
      b.writeBigInt64LE(585n, 104);
    }), 4096);
    expect(r.ok ? undefined : r.error.message).toBe('x.sif: the SIF descriptor table is 585 bytes, too short for its 2 descriptors of 585 bytes');
  });

  it('an empty image: no descriptors, no objects', () => {
    const r = parseSif('x.sif', header((b) => b.writeBigInt64LE(128n, 96)), 128);
    expect(r.ok && r.value.objects).toEqual([]);
  });
});
