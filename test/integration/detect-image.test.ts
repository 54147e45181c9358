import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectImage } from '../../src/image/detect-image.js';
import { buildTestImages, HEADER, type TestImages } from '../helpers/busybox-image.js';

let work: string;
let images: TestImages;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orchestrator-detect-'));
  images = buildTestImages(work);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('detectImage', () => {
  it('finds each format and its offset', async () => {
    const cases = [
      [images.sandbox, 'sandbox', 0, false],
      [images.squashfs, 'squashfs', 0, false],
      [images.squashfsHeader, 'squashfs', 31, true],
      [images.ext3, 'ext3', 0, false],
      [images.ext3Header, 'ext3', 31, true],
    ] as const;
    for (const [path, format, offset, header] of cases) {
      const r = await detectImage(path);
      expect(r).toMatchObject({ ok: true, value: { path, format, offset, header } });
    }
    expect(HEADER.length).toBe(31);
  });

  const bad = async (name: string, content: Buffer | string): Promise<string> => {
    const p = join(work, name);
    writeFileSync(p, content);
    const r = await detectImage(p);
    if (r.ok) throw new Error(`${name} detected as ${r.value.format}`);
    return `${r.error.reason}: ${r.error.message}`;
  };

  it('says what a file that is not an image looks like', async () => {
    expect(await bad('empty', '')).toBe(`image-unrecognized: ${join(work, 'empty')}: not a Singularity image: an empty file`);
    expect(await bad('text', 'hello world\nsecond line\n')).toBe(`image-unrecognized: ${join(work, 'text')}: not a Singularity image: a text file (starting 'hello world')`);
    expect(await bad('gz', gzipSync('x'))).toBe(`image-unrecognized: ${join(work, 'gz')}: not a Singularity image: gzip-compressed data (a tar.gz layer or archive?)`);
    expect(await bad('elf', readFileSync('/bin/busybox').subarray(0, 8192))).toBe(`image-unrecognized: ${join(work, 'elf')}: not a Singularity image: an ELF executable`);
    const tar = execFileSync('tar', ['-cf', '-', '-C', images.sandbox, 'etc/os-release']);
    expect(await bad('tar', tar)).toBe(`image-unrecognized: ${join(work, 'tar')}: not a Singularity image: a tar archive`);
    expect(await bad('random', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)))).toBe(
      `image-unrecognized: ${join(work, 'random')}: not a Singularity image: unrecognized binary data`,
    );
    expect(await bad('header-only', HEADER)).toBe(`image-unrecognized: ${join(work, 'header-only')}: not a Singularity image: a run-singularity header followed by an empty file`);
  });

  it('reports a truncated squashfs or ext3 image', async () => {
    const sq = join(work, 'truncated.simg');
    writeFileSync(sq, readFileSync(images.squashfsHeader));
    truncateSync(sq, 31 + 4096);
    const r = await detectImage(sq);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.reason).toBe('image-truncated');
      expect(r.error.message).toMatch(new RegExp(`^${sq}: truncated squashfs image: the superblock says \\d+ bytes, the file holds 4096$`));
    }
    const ext = join(work, 'truncated.img');
    writeFileSync(ext, readFileSync(images.ext3).subarray(0, 1024 * 1024));
    const e = await detectImage(ext);
    expect(!e.ok && e.error.message).toBe(`${ext}: truncated ext3 image: the superblock says 16777216 bytes, the file holds 1048576`);
  });

  it('reports a missing path', async () => {
    const r = await detectImage(join(work, 'nope.simg'));
    expect(!r.ok && `${r.error.reason}: ${r.error.message}`).toBe(`image-not-found: ${join(work, 'nope.simg')}: no such image file or folder`);
  });
});
