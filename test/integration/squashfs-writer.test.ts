import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, chmodSync, utimesSync, writeFileSync, openSync, writeSync, closeSync, fstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportSquashfs } from '../../src/image/export-squashfs.js';
import { LAUNCH_HEADER } from '../../src/image/launch-header.js';
import { squashfsWriterPath } from '../../src/image/squashfs-writer.js';
import { describeTree, makeTree, runWriter, seeded, withSquashfsMount, type Written } from '../helpers/squashfs-tree.js';

const BLOCK = 131072;
const writerPath = squashfsWriterPath();
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

/** Runs orchestrator-mksquashfs on SOURCE into OUTPUT. */
const write = (source: string, output: string, extra: readonly string[] = []): Written => runWriter([source, output, ...extra]);

/**
 * `unsquashfs -lls` of an image, one line per entry. A folder's size is the length of its encoded
 * listing, which depends on where the writer starts new listing headers: masked.
 */
function lls(image: string): string[] {
  return execFileSync('unsquashfs', ['-lls', '-d', 'R', image], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    .split('\n')
    .filter((l) => l.includes(' R'))
    .map((l) => (l.startsWith('d') ? l.replace(/^(\S+ \S+\s+)\d+/, (_, head: string) => `${head}DIRSIZE`) : l));
}

const clampLines = (lines: readonly string[], epoch: number): string[] => lines.map((l) => l.replace(/ t(\d+) /, (_, t: string) => ` t${Math.min(Number(t), epoch)} `));

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orch-sqfs-writer-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('orchestrator-mksquashfs: every kind of entry', () => {
  let src: string;
  let expected: string[];
  beforeAll(async () => {
    src = join(work, 'full');
    mkdirSync(src);
    await makeTree(src, { huge: true });
    expected = describeTree(src);
  });

  it('writes (through exportSquashfs) an image the kernel mounts that equals the tree entry by entry', async () => {
    const out = join(work, 'full.simg');
    const r = await exportSquashfs({ source: src, output: out, writer: 'orchestrator' });
    expect(r.ok).toBe(true);
    expect(readFileSync(out).subarray(0, 31).toString()).toBe(LAUNCH_HEADER);
    expect(statSync(out).mode & 0o777).toBe(0o755);
    expect(statSync(out).size % 4096).toBe(31 % 4096);
    const seen = await withSquashfsMount(out, 31, join(work, 'mnt-full'), (dir) => describeTree(dir));
    expect(seen).toEqual(expected);
    // The tree has what the format needs to get right.
    expect(expected.find((l) => l.startsWith('sparse-5g '))).toContain(' 5368709120 ');
    expect(expected.filter((l) => l.startsWith('big/')).length).toBe(3001);
    expect(expected).toContain('hardlinks etc/linked shared/linked-3 usr/bin/linked-2');
    expect(expected.find((l) => l.startsWith('etc/hello '))).toMatch(/ 600 1234:5678 .*user\.comment=0x(76){300}\]$/);
    expect(expected.find((l) => l.startsWith('usr/bin/hello-link '))).toMatch(/ 4000000000:42 .*trusted\.link=/);
    // With a block cache: filled, then used; the same bytes either way.
    const cache = join(work, 'export-cache');
    for (const name of ['cached-1.simg', 'cached-2.simg']) {
      expect((await exportSquashfs({ source: src, output: join(work, name), writer: 'orchestrator', blockCache: cache })).ok).toBe(true);
      expect(sha(join(work, name))).toBe(sha(out));
    }
    expect(readdirSync(join(cache, 'files')).length).toBeGreaterThan(0);
  });

  it('is byte-reproducible: thread count, inode numbers, readdir order and the tree\'s path do not matter', () => {
    const copy = join(work, 'full-copy');
    execFileSync('cp', ['-a', src, copy]);
    expect(describeTree(copy)).toEqual(expected);
    const a = join(work, 'repro-a.sqfs');
    const b = join(work, 'repro-b.sqfs');
    write(src, a, ['--jobs', '1']);
    write(`${copy}/`, b, ['--jobs', '3']); // and where the tree is, and how its path is spelled
    expect(sha(b)).toBe(sha(a));
    rmSync(copy, { recursive: true, force: true });
  });

  it('clamps mtimes with --clamp (older ones kept) and fixes the super block time', async () => {
    const epoch = 1_600_000_004;
    const out = join(work, 'clamped.sqfs');
    write(src, out, ['--clamp', String(epoch), '--offset', '31']);
    const image = readFileSync(out);
    expect(image.readUInt32LE(31 + 8)).toBe(epoch);
    const seen = await withSquashfsMount(out, 31, join(work, 'mnt-clamp'), (dir) => describeTree(dir));
    expect(seen).toEqual(clampLines(expected, epoch));
    expect(seen.find((l) => l.startsWith('text '))).toContain(' t100 ');
    // No clamp: the super block says 0; --mkfs-time sets it.
    write(src, out, ['--offset', '31']);
    expect(readFileSync(out).readUInt32LE(31 + 8)).toBe(0);
    write(src, out, ['--mkfs-time', '77']);
    expect(readFileSync(out).readUInt32LE(8)).toBe(77);
  });
});

describe('orchestrator-mksquashfs: the tree without the 5 GiB file; compressors, options, failures', () => {
  let src: string;
  let expected: string[];
  beforeAll(async () => {
    src = join(work, 'small');
    mkdirSync(src);
    await makeTree(src);
    expected = describeTree(src);
  });

  it('lists like an mksquashfs image of the same tree (3000-entry folder, sparse files, ...), and sqfsdiff finds no difference (times included)', () => {
    const ours = join(work, 'ours.sqfs');
    const theirs = join(work, 'theirs.sqfs');
    write(src, ours);
    execFileSync('mksquashfs', [src, theirs, '-noappend', '-no-progress', '-quiet', '-comp', 'gzip']);
    expect(lls(ours)).toEqual(lls(theirs));
    const diff = spawnSync('sqfsdiff', ['--timestamps', '-a', theirs, '-b', ours], { encoding: 'utf8' });
    // One difference in inode format, none in content: an all-zero file that is not sparse on disk
    // gets mksquashfs's basic inode (it counts zero blocks as sparse only when the source file is),
    // ours the extended one with the zero blocks counted, so the image does not depend on how the
    // source happens to be allocated.
    expect(diff.stdout + diff.stderr).toBe('/zeros has an extended type\n');

  });

  it.each(['xz', 'zstd', 'lz4'])('writes %s images the kernel mounts', async (comp) => {
    const out = join(work, `small-${comp}.sqfs`);
    write(src, out, ['--comp', comp, '--offset', '31']);
    expect(readFileSync(out).readUInt16LE(31 + 20)).toBe({ xz: 4, lz4: 5, zstd: 6 }[comp]);
    expect(await withSquashfsMount(out, 31, join(work, `mnt-${comp}`), (dir) => describeTree(dir))).toEqual(expected);
  });

  it('honours --block-size and --level (lz4 high compression)', async () => {
    const out = join(work, 'small-4k.sqfs');
    write(src, out, ['--block-size', '4096', '--comp', 'lz4', '--level', '9']);
    expect(readFileSync(out).readUInt32LE(12)).toBe(4096);
    expect(await withSquashfsMount(out, 0, join(work, 'mnt-4k'), (dir) => describeTree(dir))).toEqual(expected);
  });

  it('the mksquashfs writer clamps with the epoch too: older times are kept', async () => {
    const tree = join(work, 'times');
    mkdirSync(tree);
    writeFileSync(join(tree, 'old'), 'old\n');
    writeFileSync(join(tree, 'new'), 'new\n');
    utimesSync(join(tree, 'old'), 1000, 1000);
    utimesSync(join(tree, 'new'), 2_000_000_000, 2_000_000_000);
    for (const writer of ['mksquashfs', 'orchestrator'] as const) {
      const out = join(work, `times-${writer}.simg`);
      expect((await exportSquashfs({ source: tree, output: out, epoch: 1_700_000_000, writer })).ok).toBe(true);
      expect(readFileSync(out).readUInt32LE(31 + 8)).toBe(1_700_000_000);
      const times = await withSquashfsMount(out, 31, join(work, `mnt-times-${writer}`), (dir) => ['old', 'new', '.'].map((n) => statSync(join(dir, n)).mtimeMs / 1000));
      expect(times).toEqual([1000, 1_700_000_000, 1_700_000_000]);
    }
  });

  it('fails cleanly: a missing source, lzo, bad options; nothing is written', async () => {
    const out = join(work, 'fail', 'img.simg');
    mkdirSync(join(work, 'fail'));
    const missing = await exportSquashfs({ source: join(work, 'nope'), output: out, writer: 'orchestrator' });
    expect(missing.ok).toBe(false);
    if (!missing.ok) {
      expect(missing.error.reason).toBe('tool-failed');
      expect(missing.error.message).toMatch(/^squashfs export of .*nope: orchestrator-mksquashfs exited with status 1\norchestrator-mksquashfs: error: .*nope: No such file or directory$/);
    }
    const lzo = await exportSquashfs({ source: src, output: out, writer: 'orchestrator', compression: 'lzo' });
    expect(lzo.ok).toBe(false);
    if (!lzo.ok) expect(lzo.error.reason).toBe('squashfs-writer-unsupported');
    expect(readdirSync(join(work, 'fail'))).toEqual([]);
    const bad = spawnSync(writerPath, [src, out, '--block-size', '1000'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('orchestrator-mksquashfs: error: --block-size: must be a power of two from 4096 to 1048576\n');
    const comp = spawnSync(writerPath, [src, out, '--comp', 'lzo'], { encoding: 'utf8' });
    expect(comp.status).toBe(2);
    expect(comp.stderr).toBe("orchestrator-mksquashfs: error: --comp: unknown compressor 'lzo' (gzip, xz, zstd, lz4)\n");
    const prefix = spawnSync(writerPath, [src, out, '--offset', '4', '--prefix', 'too long'], { encoding: 'utf8' });
    expect(prefix.status).toBe(2);
    expect(prefix.stderr).toBe('orchestrator-mksquashfs: error: --prefix: longer than --offset (or --offset over 65536)\n');
    expect(existsSync(out)).toBe(false);
  });
});

describe('orchestrator-mksquashfs: block cache', () => {
  let src: string;
  beforeAll(async () => {
    src = join(work, 'inc');
    mkdirSync(src);
    await makeTree(src, { bigDir: 200 });
    mkdirSync(join(src, 'small'));
    for (let i = 0; i < 600; i++) writeFileSync(join(src, 'small', `f-${String(i).padStart(3, '0')}`), seeded(`small-${i}`, 100 + ((i * 7919) % 3900)));
    writeFileSync(join(src, 'big-1m'), seeded('big-1m', 1024 * 1024 + 5000));
  });

  it('a warm write equals a cold one byte for byte after each kind of change, and recompresses only what changed', async () => {
    const cache = join(work, 'cache');
    const steps: { name: string; change: () => void; most: number }[] = [
      { name: 'first write', change: () => undefined, most: Number.POSITIVE_INFINITY },
      { name: 'nothing changed', change: () => undefined, most: 0 },
      {
        name: "one file's content",
        change: () => {
          const fd = openSync(join(src, 'big-1m'), 'r+');
          writeSync(fd, Buffer.from('changed'), 0, 7, 300_000);
          closeSync(fd);
        },
        // the file's blocks and its tail's fragment group
        most: 1024 * 1024 + BLOCK,
      },
      { name: 'a mode', change: () => chmodSync(join(src, 'small/f-100'), 0o600), most: 0 },
      { name: 'an owner and a time', change: () => (execFileSync('chown', ['7:7', join(src, 'small/f-101')]), utimesSync(join(src, 'small/f-101'), 5, 5)), most: 0 },
      { name: 'a tail-only file', change: () => writeFileSync(join(src, 'small/f-200'), seeded('other', statSync(join(src, 'small/f-200')).size)), most: BLOCK },
      { name: 'a file added', change: () => writeFileSync(join(src, 'small/f-250-new'), seeded('new', 3000)), most: 3 * BLOCK },
      { name: 'a file deleted', change: () => rmSync(join(src, 'small/f-300')), most: 3 * BLOCK },
      { name: 'a file renamed', change: () => renameSync(join(src, 'small/f-400'), join(src, 'etc/f-400-moved')), most: 4 * BLOCK },
      {
        name: 'a folder replaced by a file',
        change: () => {
          rmSync(join(src, 'etc/deep'), { recursive: true });
          writeFileSync(join(src, 'etc/deep'), 'now a file\n');
        },
        most: 3 * BLOCK,
      },
    ];
    let total = 0;
    for (const step of steps) {
      step.change();
      const warm = write(src, join(work, 'warm.sqfs'), ['--block-cache', cache]);
      const cold = write(src, join(work, 'cold.sqfs'));
      expect(sha(join(work, 'warm.sqfs')), step.name).toBe(sha(join(work, 'cold.sqfs')));
      expect(warm.stderr, step.name).toBe('');
      expect(warm.compressed, step.name).toBeLessThanOrEqual(step.most);
      if (step.name === 'first write') total = warm.compressed;
      else expect(warm.reused, step.name).toBeGreaterThan(0);
      expect(cold.compressed + cold.reused).toBe(warm.compressed + warm.reused);
    }
    expect(total).toBeGreaterThan(3 * 1024 * 1024);
    expect(await withSquashfsMount(join(work, 'warm.sqfs'), 0, join(work, 'mnt-warm'), (dir) => describeTree(dir))).toEqual(describeTree(src));
  });

  it('detects a damaged entry, drops and recomputes it, and never embeds it', async () => {
    const cache = join(work, 'cache-damage');
    const cold = join(work, 'damage-cold.sqfs');
    write(src, cold);
    write(src, join(work, 'damage-1.sqfs'), ['--block-cache', cache]);
    const entries = (kind: string): string[] => readdirSync(join(cache, kind), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
    const file = entries('files').find((p) => statSync(p).size > 64 + 4096)!;
    const fragment = entries('fragments')[0]!;
    const flip = (path: string, at: number): void => {
      const fd = openSync(path, 'r+');
      const buf = readFileSync(path);
      writeSync(fd, Buffer.from([buf[at]! ^ 0xff]), 0, 1, at);
      closeSync(fd);
    };
    flip(file, 64 + 1000);
    flip(fragment, fstatSize(fragment) - 1);
    const damaged = write(src, join(work, 'damage-2.sqfs'), ['--block-cache', cache]);
    expect(damaged.stderr).toMatch(new RegExp(`damaged entry ${escape(file)} \\(digest mismatch\\): dropped, recomputed`));
    expect(damaged.stderr).toMatch(new RegExp(`damaged entry ${escape(fragment)} \\(digest mismatch\\): dropped, recomputed`));
    expect(damaged.stderr).toMatch(/block cache: 2 damaged entries recomputed\n$/);
    expect(sha(join(work, 'damage-2.sqfs'))).toBe(sha(cold));
    // Recomputed entries were stored again: the next write reuses everything.
    const again = write(src, join(work, 'damage-3.sqfs'), ['--block-cache', cache]);
    expect(again.stderr).toBe('');
    expect(again.compressed).toBe(0);
    expect(sha(join(work, 'damage-3.sqfs'))).toBe(sha(cold));
    // A truncated entry is caught too.
    writeFileSync(file, readFileSync(file).subarray(0, 100));
    const truncated = write(src, join(work, 'damage-4.sqfs'), ['--block-cache', cache]);
    expect(truncated.stderr).toMatch(/damaged entry .* \((truncated|size mismatch|bad block size)\): dropped, recomputed/);
    expect(sha(join(work, 'damage-4.sqfs'))).toBe(sha(cold));
  });

  it('two writers can share a cache at the same time', async () => {
    const cache = join(work, 'cache-shared');
    const run = (out: string): Promise<number | null> =>
      new Promise((resolve) => spawn(writerPath, [src, out, '--block-cache', cache], { stdio: 'ignore' }).on('exit', (code) => resolve(code)));
    const codes = await Promise.all([run(join(work, 'shared-a.sqfs')), run(join(work, 'shared-b.sqfs'))]);
    expect(codes).toEqual([0, 0]);
    const cold = join(work, 'shared-cold.sqfs');
    write(src, cold);
    expect(sha(join(work, 'shared-a.sqfs'))).toBe(sha(cold));
    expect(sha(join(work, 'shared-b.sqfs'))).toBe(sha(cold));
    const leftovers = readdirSync(cache, { recursive: true }).filter((p) => String(p).includes('.tmp-'));
    expect(leftovers).toEqual([]);
  });
});

describe('orchestrator-mksquashfs: the block cache across writes', () => {
  it('marks the entries a write uses (mtime), and a SIGTERM mid-write leaves no temp entry', async () => {
    const src = join(work, 'signal-tree');
    mkdirSync(src);
    writeFileSync(join(src, 'small.bin'), seeded('signal', 300_000));
    const cache = join(work, 'cache-signal');
    write(src, join(work, 'signal-1.sqfs'), ['--block-cache', cache]);
    const entry = readdirSync(join(cache, 'files'), { recursive: true, withFileTypes: true }).find((e) => e.isFile())!;
    const path = join(entry.parentPath, entry.name);
    utimesSync(path, new Date('2020-01-01'), new Date('2020-01-01'));
    expect(write(src, join(work, 'signal-2.sqfs'), ['--block-cache', cache]).compressed).toBe(0);
    expect(statSync(path).mtimeMs).toBeGreaterThan(Date.now() - 600_000);

    // Slow: 24 MiB of incompressible data with xz -9. Stopped as soon as data blocks are written.
    writeFileSync(join(src, 'big.bin'), randomBytes(24 * 1024 * 1024));
    const child = spawn(writerPath, [src, join(work, 'signal-3.sqfs'), '--comp', 'xz', '--level', '9', '--block-cache', cache, '--progress-fd', '1'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const exit = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    let out = '';
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        // In the middle of big.bin (small.bin comes from the cache): its entry's temp is open.
        if (/"phase":"data"[^\n]*"compressed":[1-9]/.test(out)) resolve();
      }),
    );
    child.kill('SIGTERM');
    expect(await exit).toBe('SIGTERM');
    expect(readdirSync(cache, { recursive: true }).filter((p) => String(p).includes('.tmp-'))).toEqual([]);
  });
});

describe('orchestrator-mksquashfs: the digest memo and checked entries', () => {
  it('reads no unchanged file, catches a change that kept size and mtime (ctime), and ignores a damaged memo', async () => {
    const src = join(work, 'memo-tree');
    mkdirSync(join(src, 'd'), { recursive: true });
    for (let i = 0; i < 40; i++) writeFileSync(join(src, 'd', `f-${i}`), seeded(`memo-${i}`, 500 + i * 997));
    writeFileSync(join(src, 'big'), seeded('memo-big', 600_000));
    const files = 41;
    const cache = join(work, 'cache-memo');
    const cold = (name: string): string => {
      write(src, join(work, name));
      return sha(join(work, name));
    };
    // A stat is remembered only once its ctime is a second old (a later write in the same clock
    // tick could keep it): the tree must be that old for the memo to hold it.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const first = write(src, join(work, 'memo-1.sqfs'), ['--block-cache', cache]);
    expect(first.hashed).toBe(files);
    expect(existsSync(join(cache, 'digests'))).toBe(true);
    const second = write(src, join(work, 'memo-2.sqfs'), ['--block-cache', cache]);
    expect(second).toEqual({ compressed: 0, reused: first.compressed, hashed: 0, listed: first.listed, stderr: '' });
    expect(sha(join(work, 'memo-2.sqfs'))).toBe(cold('memo-cold-1.sqfs'));

    // Same size, same mtime (touch -r), other bytes: only the ctime tells. Read again, recompressed.
    const changed = join(src, 'd', 'f-7');
    const size = statSync(changed).size;
    writeFileSync(changed, seeded('memo-changed', size));
    execFileSync('touch', ['-r', join(src, 'd', 'f-8'), changed]);
    expect(statSync(changed).mtimeMs).toBe(statSync(join(src, 'd', 'f-8')).mtimeMs);
    const third = write(src, join(work, 'memo-3.sqfs'), ['--block-cache', cache]);
    expect(third.hashed).toBe(1);
    expect(third.compressed).toBeGreaterThan(0);
    expect(sha(join(work, 'memo-3.sqfs'))).toBe(cold('memo-cold-2.sqfs'));
    expect(sha(join(work, 'memo-3.sqfs'))).not.toBe(sha(join(work, 'memo-2.sqfs')));

    // A damaged memo is ignored (every file read again) and rebuilt.
    const memo = join(cache, 'digests');
    const bytes = readFileSync(memo);
    bytes[40] = bytes[40]! ^ 0x01;
    writeFileSync(memo, bytes);
    const damaged = write(src, join(work, 'memo-4.sqfs'), ['--block-cache', cache]);
    expect(damaged.stderr).toBe(`orchestrator-mksquashfs: warning: block cache: damaged digest memo ${memo} (digest mismatch): ignored, rebuilt\n`);
    expect(damaged.hashed).toBe(files);
    expect(sha(join(work, 'memo-4.sqfs'))).toBe(sha(join(work, 'memo-3.sqfs')));
    writeFileSync(memo, 'not a memo');
    const garbage = write(src, join(work, 'memo-5.sqfs'), ['--block-cache', cache]);
    expect(garbage.stderr).toBe(`orchestrator-mksquashfs: warning: block cache: damaged digest memo ${memo} (bad size): ignored, rebuilt\n`);
    expect(sha(join(work, 'memo-5.sqfs'))).toBe(sha(join(work, 'memo-3.sqfs')));
    // The entries are a second old now: this write checks them in full and remembers it.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    // (f-7 was changed less than a second before some of the writes above: maybe read once more.)
    const rebuilt = write(src, join(work, 'memo-6.sqfs'), ['--block-cache', cache]);
    expect(rebuilt.stderr).toBe('');
    expect(rebuilt.hashed).toBeLessThanOrEqual(1);
    expect(write(src, join(work, 'memo-6.sqfs'), ['--block-cache', cache]).hashed).toBe(0);

    // An entry an earlier write checked (so now copied without reading it) is still caught when
    // its bytes change: the write changes its ctime, and it is checked in full again.
    const entry = readdirSync(join(cache, 'files'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name))
      .find((p) => statSync(p).size > 64 + 100_000)!;
    const fd = openSync(entry, 'r+');
    const at = 64 + 5000;
    const old = readFileSync(entry)[at]!;
    writeSync(fd, Buffer.from([old ^ 0xff]), 0, 1, at);
    closeSync(fd);
    const caught = write(src, join(work, 'memo-7.sqfs'), ['--block-cache', cache]);
    expect(caught.stderr).toMatch(new RegExp(`damaged entry ${escape(entry)} \\(digest mismatch\\): dropped, recomputed`));
    expect(sha(join(work, 'memo-7.sqfs'))).toBe(sha(join(work, 'memo-3.sqfs')));
  });
});

function fstatSize(path: string): number {
  const fd = openSync(path, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
