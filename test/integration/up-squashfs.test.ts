import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

/**
 * Squashfs targets through `orchestrator up` with our writer (docs/ARCHITECTURE.md, Images and
 * Store): the `squashfs:` key, its part in the target key, progress events, the block cache in
 * the store (damage, prune), and interrupted or failed exports that keep the previous image.
 */
let rig: Rig;
let env: NodeJS.ProcessEnv;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-up-squashfs-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache') };
  delete env['CI'];
});
afterEach(() => rig.cleanup());

type Event = Record<string, unknown> & { type: string; target?: string };
const events = (stdout: string): Event[] => stdout.trim().split('\n').map((l) => JSON.parse(l) as Event);
/** The uncompressed bytes the export compressed now and copied from the block cache (its export-done event). */
const exportDone = (stdout: string): { compressedBytes: number; reusedBytes: number } =>
  (events(stdout).find((e) => e.type === 'export-done') as unknown as { squashfs: { compressedBytes: number; reusedBytes: number } }).squashfs;
const sha256 = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
/** Block size and compressor id (1 gzip, 4 xz, 6 zstd) from the superblock after the launch line. */
const superblock = (p: string): [number, number] => {
  const sb = readFileSync(p).subarray(31, 31 + 96);
  return [sb.readUInt32LE(12), sb.readUInt16LE(20)];
};

const manifest = (squashfs: string, output = 'dist/app.simg') => `version: 1
targets:
  app:
    from: ./rootfs
    recipe: app.def
    output: ${output}
${squashfs ? `    squashfs: ${squashfs}\n` : ''}`;
const recipe = (runscript: string, files = '') => `${files ? `%files\n    ${files}\n` : ''}%runscript\n    ${runscript}\n`;

/**
 * After a first build, an export that is slow to compress (24 MiB of random data with xz -9) is
 * started and awaited until it is in the middle of big.bin, the one content not in the cache, whose
 * entry's temp is then open. The image as the first build left it, and its sha256.
 */
async function startSlowExport(): Promise<{ image: string; before: string; child: ChildProcess; exit: Promise<number | null> }> {
  rig.write({ 'orchestrator.yaml': manifest('{compression: xz, level: 9}'), 'app.def': recipe('echo one') });
  expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
  const image = rig.path('dist/app.simg');
  const before = sha256(image);
  writeFileSync(rig.path('big.bin'), randomBytes(24 * 1024 * 1024));
  rig.write({ 'app.def': recipe('echo two', 'big.bin /big.bin') });
  const child = spawn(process.execPath, [BIN, 'up', '--progress', 'json'], { cwd: rig.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  let out = '';
  await new Promise<void>((resolve) =>
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (/"type":"export-progress"[^\n]*"phase":"data"[^\n]*"compressedBytes":[1-9]/.test(out)) resolve();
    }),
  );
  return { image, before, child, exit };
}

/** Every file under the cache's blocks/ folder, relative to it. */
function blockFiles(): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const abs = rig.path(join('cache/blocks', rel));
    if (!existsSync(abs)) return;
    for (const name of readdirSync(abs)) {
      const p = join(rel, name);
      if (statSync(rig.path(join('cache/blocks', p))).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk('');
  return out.sort();
}

describe('squashfs targets with our writer', () => {
  it('writes with the squashfs key, reports progress, reuses blocks after a %runscript edit, and is stale when the options change', async () => {
    rig.write({ 'orchestrator.yaml': manifest('{compression: zstd, level: 3, block_size: 64KiB}'), 'app.def': recipe('echo one') });
    const first = await rig.spawn(['up', '--progress', 'json'], { env });
    expect([first.code, first.stderr]).toEqual([0, '']);
    const image = rig.path('dist/app.simg');
    expect(superblock(image)).toEqual([65536, 6]);
    const progress = events(first.stdout).filter((e) => e.type === 'export-progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatchObject({ target: 'app', phase: 'done', reusedBytes: 0 });
    const total = progress.at(-1)!['bytesTotal'] as number;
    expect(total).toBeGreaterThan(1_000_000);
    expect(events(first.stdout).find((e) => e.type === 'export-done')).toMatchObject({ squashfs: { compressedBytes: total, reusedBytes: 0 } });
    expect(blockFiles().some((f) => f.startsWith('files/'))).toBe(true);

    // A %runscript edit: the blocks of busybox come from the cache; only a fragment block or two is compressed again.
    rig.write({ 'app.def': recipe('echo two') });
    const second = await rig.spawn(['up', '--progress', 'json'], { env });
    expect(second.code).toBe(0);
    const done = exportDone(second.stdout);
    expect(done.reusedBytes).toBeGreaterThan(1_000_000);
    expect(done.compressedBytes).toBeLessThan(done.reusedBytes / 10);
    const plain = await rig.spawn(['up', '--progress', 'plain', '--force'], { env });
    expect(plain.stdout).toMatch(/app: exported in .* \(0 B compressed, .* reused from the block cache\)/);

    // Other options make other bytes: the target is stale, and plan says why.
    rig.write({ 'orchestrator.yaml': manifest('{compression: gzip, block_size: 64KiB}') });
    const plan = JSON.parse((await rig.spawn(['plan', '--json'], { env })).stdout) as { targets: Array<{ name: string; status: string; reasons: Array<{ code: string; message: string }> }> };
    expect(plan.targets[0]).toMatchObject({ name: 'app', status: 'stale' });
    expect(plan.targets[0]!.reasons).toEqual([
      { code: 'format', message: 'squashfs compression changed: zstd → gzip' },
      { code: 'format', message: 'squashfs level changed: 3 → 9' },
    ]);
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    expect(superblock(image)).toEqual([65536, 1]);
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).stdout).toContain('app: fresh');

    // The fallback writes the same tree with squashfs-tools, and that too changes the key.
    rig.write({ 'orchestrator.yaml': manifest('{writer: mksquashfs, block_size: 64KiB}') });
    const fallback = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(fallback.stdout).toContain('app: stale: squashfs writer changed: orchestrator → mksquashfs');
    expect(fallback.code).toBe(0);
    expect(superblock(image)).toEqual([65536, 1]);
    expect(execFileSync('unsquashfs', ['-o', '31', '-cat', image, '.singularity.d/runscript'], { encoding: 'utf8' })).toContain('echo two');
  });

  it('refuses bad squashfs options, each at its value with a hint, and writes nothing', async () => {
    rig.write({
      'orchestrator.yaml': `version: 1
targets:
  a:
    from: ./rootfs
    output: dist/a.simg
    squashfs: {compression: zstd, level: 30}
  b:
    from: ./rootfs
    output: dist/b.simg
    squashfs: {block_size: 100000}
  c:
    from: ./rootfs
    output: dist/c.simg
    squashfs: {compression: lzo}
  d:
    from: ./rootfs
    output: dist/d/
    squashfs: {compression: xz}
  e:
    from: ./rootfs
    output: dist/e.simg
    squashfs: {writer: mksquashfs, compression: xz, level: 3}
`,
    });
    const r = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      [
        "orchestrator.yaml:6:42: error: target 'a': compression level 30 is out of range for zstd",
        '      squashfs: {compression: zstd, level: 30}',
        '                                           ^~',
        '  hint: use a whole number from 1 to 22',
      ].join('\n'),
    );
    expect(r.stderr).toContain("orchestrator.yaml:10:28: error: target 'b': block size 100000 is not a power of two from 4 KiB to 1 MiB");
    expect(r.stderr).toContain("orchestrator.yaml:14:29: error: target 'c': the orchestrator squashfs writer has no lzo compressor");
    expect(r.stderr).toContain("  hint: use gzip, xz, zstd or lz4, or 'writer: mksquashfs'");
    expect(r.stderr).toContain("orchestrator.yaml:18:5: error: 'squashfs' applies only to squashfs and SIF images, but target 'd' is sandbox");
    expect(r.stderr).toContain("orchestrator.yaml:22:60: error: target 'e': mksquashfs takes no compression level for xz");
    expect(r.stderr.endsWith('\n5 errors\n')).toBe(true);
    expect(existsSync(rig.path('dist'))).toBe(false);
  });

  it('detects a damaged block cache entry, drops it and compresses again: the image is the same', async () => {
    rig.write({ 'orchestrator.yaml': manifest(''), 'app.def': recipe('echo one') });
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    const image = rig.path('dist/app.simg');
    const good = sha256(image);
    const entries = blockFiles().filter((f) => f.startsWith('files/'));
    expect(entries.length).toBeGreaterThan(0);
    for (const f of entries) {
      const p = rig.path(join('cache/blocks', f));
      const bytes = readFileSync(p);
      bytes[100] = bytes[100]! ^ 0xff; // a data byte after the 64-byte header
      writeFileSync(p, bytes);
    }
    const again = await rig.spawn(['up', '--progress', 'json', '--force'], { env });
    expect(again.code).toBe(0);
    expect(sha256(image)).toBe(good);
    const log = readFileSync(rig.path('.orchestrator/logs/app/export.log'), 'utf8');
    expect(log).toContain('damaged entry');
    expect(log).toContain('(digest mismatch): dropped, recomputed');
    // The bytes of a damaged entry were never embedded: they were compressed again, and stored again intact.
    expect(exportDone(again.stdout).compressedBytes).toBeGreaterThan(1_000_000);
    const third = await rig.spawn(['up', '--progress', 'json', '--force'], { env });
    expect(exportDone(third.stdout).compressedBytes).toBe(0);
    expect(sha256(image)).toBe(good);
  });

  it('layers our writer does not merge (an overlayfs redirect mark in the source): the same writer reads the mounted view instead', async () => {
    mkdirSync(rig.path('rootfs/opt/moved'), { recursive: true });
    writeFileSync(rig.path('rootfs/opt/moved/data'), 'kept\n');
    execFileSync('setfattr', ['-n', 'trusted.overlay.redirect', '-v', 'elsewhere', rig.path('rootfs/opt/moved')]);
    rig.write({ 'orchestrator.yaml': manifest(''), 'app.def': recipe('echo one') });
    const r = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(execFileSync('unsquashfs', ['-o', '31', '-cat', rig.path('dist/app.simg'), 'opt/moved/data'], { encoding: 'utf8' })).toBe('kept\n');
    // The refusal is in the export's log, before the mounted view's write.
    expect(readFileSync(rig.path('.orchestrator/logs/app/export.log'), 'utf8')).toContain("opt/moved: overlay 'redirect' mark: not supported when merging layers");
  });

  it('cache prune keeps the blocks and listings the last export used, removes older ones and temps, and reports them', async () => {
    rig.write({ 'orchestrator.yaml': manifest(''), 'app.def': recipe('echo one') });
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    const used = blockFiles();
    // An entry no export used lately, and a temp a killed writer left.
    const entry = used.find((f) => f.startsWith('files/'))!;
    const stale = join(entry, '..', 'f'.repeat(64));
    copyFileSync(rig.path(join('cache/blocks', entry)), rig.path(join('cache/blocks', stale)));
    utimesSync(rig.path(join('cache/blocks', stale)), new Date('2020-01-01'), new Date('2020-01-01'));
    writeFileSync(rig.path(join('cache/blocks', `${entry}.tmp-a1B2c3`)), 'partial');
    // The export remembered its stable layers' listings; an old one is pruned like an entry.
    const listing = used.find((f) => f.startsWith('listings/'))!;
    expect(listing).toBeDefined();
    const staleListing = join(listing, '..', 'e'.repeat(64));
    copyFileSync(rig.path(join('cache/blocks', listing)), rig.path(join('cache/blocks', staleListing)));
    utimesSync(rig.path(join('cache/blocks', staleListing)), new Date('2020-01-01'), new Date('2020-01-01'));

    const ls = await rig.spawn(['cache', 'ls'], { env });
    expect(ls.stdout).toMatch(new RegExp(`block\\s+\\(${used.length + 2} entries\\)`));
    const dry = JSON.parse((await rig.spawn(['cache', 'prune', '--dry-run', '--json'], { env })).stdout) as { blocks: { removed: number } };
    expect(dry.blocks.removed).toBe(2);
    expect(blockFiles()).toContain(stale);
    const pruned = await rig.spawn(['cache', 'prune'], { env });
    expect(pruned.code).toBe(0);
    const size = statSync(rig.path(join('cache/blocks', entry))).size;
    expect(pruned.stdout).toContain(`removed 2 block cache entries (`);
    expect(pruned.stdout).toContain('removed 1 block cache temps left by interrupted exports');
    expect(size).toBeGreaterThan(0);
    expect(blockFiles()).toEqual(used);
    // What is kept is what the next export needs: nothing to compress.
    const next = await rig.spawn(['up', '--progress', 'json', '--force'], { env });
    expect(exportDone(next.stdout).compressedBytes).toBe(0);
  });

  it('a SIGKILLed up takes its squashfs writer with it (which then removes its cache temps), and the previous image stays', async () => {
    const { image, before, child, exit } = await startSlowExport();
    const writers = (): string[] =>
      execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes('orchestrator-mksquashfs') && l.includes(rig.dir));
    expect(writers()).toHaveLength(1);
    child.kill('SIGKILL');
    await exit;
    // The writer gets SIGTERM from the kernel as its parent dies; it removes its temps and ends.
    for (let i = 0; i < 100 && writers().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(writers()).toEqual([]);
    expect(sha256(image)).toBe(before);
    expect(blockFiles().filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('an interrupted export (SIGINT) keeps the previous image and leaves no partial cache entry or temp', async () => {
    const { image, before, child, exit } = await startSlowExport();
    child.kill('SIGINT');
    expect(await exit).toBe(130);
    expect(sha256(image)).toBe(before);
    expect(readdirSync(rig.path('dist'))).toEqual(['app.simg']);
    expect(blockFiles().filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(readdirSync(rig.path('cache/tmp')).filter((n) => !n.endsWith('-active'))).toEqual([]);
  });

  it('on a full disk: one clear error, the previous image and its state kept', async () => {
    mkdirSync(rig.path('out'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', rig.path('out')]);
    try {
      rig.write({ 'orchestrator.yaml': manifest('', 'out/app.simg'), 'app.def': recipe('echo one') });
      expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
      const image = rig.path('out/app.simg');
      const before = sha256(image);
      const state = readFileSync(rig.path('.orchestrator/state.json'), 'utf8');
      writeFileSync(rig.path('big.bin'), randomBytes(3 * 1024 * 1024));
      rig.write({ 'app.def': recipe('echo two', 'big.bin /big.bin') });
      const r = await rig.spawn(['up', '--progress', 'plain'], { env });
      expect(r.code).toBe(1);
      expect(r.stderr.match(/^error: /gm)).toHaveLength(1);
      expect(r.stderr).toMatch(/orchestrator-mksquashfs exited with status 1\n.*No space left on device/);
      expect(r.stderr).toMatch(/ENOSPC: the file system at .*\/out \(tmpfs\) holding .*out\/app\.simg has .* free of 2\.0 MiB/);
      expect(sha256(image)).toBe(before);
      expect(readdirSync(rig.path('out'))).toEqual(['app.simg']);
      expect(readFileSync(rig.path('.orchestrator/state.json'), 'utf8')).toBe(state);
    } finally {
      execFileSync('umount', [rig.path('out')]);
    }
  });

  it('one-shot build: a conversion takes the squashfs options, reuses the block cache, and refuses bad ones', async () => {
    const first = await rig.spawn(['build', '--compression', 'zstd', '--compression-level', '19', '--block-size', '1MiB', 'a.simg', 'rootfs'], { env });
    expect(first.code).toBe(0);
    expect(superblock(rig.path('a.simg'))).toEqual([1048576, 6]);
    expect(first.stderr).toMatch(/export: done in .* \(.* compressed, 0 B reused from the block cache\)/);
    const again = await rig.spawn(['build', '--compression', 'zstd', '--compression-level', '19', '--block-size', '1MiB', 'b.simg', 'rootfs'], { env });
    expect(again.stderr).toMatch(/export: done in .* \(0 B compressed, .* reused from the block cache\)/);
    expect(sha256(rig.path('b.simg'))).toBe(sha256(rig.path('a.simg')));
    const fallback = await rig.spawn(['build', '--squashfs-writer', 'mksquashfs', 'c.simg', 'rootfs'], { env });
    expect(fallback.code).toBe(0);
    expect(fallback.stderr).toMatch(/export: done in [\d.]+ m?s\n/);
    expect(superblock(rig.path('c.simg'))).toEqual([131072, 1]);

    const bad = await rig.spawn(['build', '--compression', 'gzip', '--compression-level', '12', 'd.simg', 'rootfs'], { env });
    expect([bad.code, bad.stderr]).toEqual([2, 'error: --compression-level: compression level 12 is out of range for gzip\n  hint: use a whole number from 1 to 9\n']);
    const size = await rig.spawn(['build', '--block-size', '3000', 'd.simg', 'rootfs'], { env });
    expect(size.stderr).toBe('error: --block-size: block size 3000 is not a power of two from 4 KiB to 1 MiB\n  hint: use 4KiB, 8KiB, ... 128KiB (the default), 256KiB, 512KiB or 1MiB\n');
    const sandbox = await rig.spawn(['build', '--sandbox', '--compression', 'xz', 'd', 'rootfs'], { env });
    expect([sandbox.code, sandbox.stderr]).toEqual([2, 'error: --compression applies to squashfs and SIF images, not to --sandbox\n  hint: leave --compression out, or build a .simg or .sif\n']);
    expect(existsSync(rig.path('d.simg')) || existsSync(rig.path('d'))).toBe(false);
  });
});
