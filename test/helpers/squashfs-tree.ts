import { execFileSync, spawnSync } from 'node:child_process';
import { expect } from 'vitest';
import { squashfsWriterPath } from '../../src/image/squashfs-writer.js';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, readFileSync, closeSync, linkSync, lstatSync, mkdirSync, openSync, readSync, readdirSync, readlinkSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** What orchestrator-mksquashfs says in its last progress line, and its warnings. */
export interface Written {
  readonly compressed: number;
  readonly reused: number;
  /** Files read to get their content digest (the others came from the digest or listing memo). */
  readonly hashed: number;
  /** Entries stat'ed (the others came from listing memos). */
  readonly listed: number;
  readonly stderr: string;
}

/** Runs orchestrator-mksquashfs with args (expecting success); the last progress line says what it did. */
export function runWriter(args: readonly string[]): Written {
  const r = spawnSync(squashfsWriterPath(), [...args, '--progress-fd', '1'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  expect(r.status, r.stderr).toBe(0);
  const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { phase: string; compressed: number; reused: number; hashed: number; listed: number };
  expect(last.phase).toBe('done');
  return { compressed: last.compressed, reused: last.reused, hashed: last.hashed, listed: last.listed, stderr: r.stderr };
}

/** Random bytes from a seed (the same seed gives the same bytes: trees can be rebuilt exactly). */
export function seeded(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  let filled = 0;
  for (let i = 0; filled < length; i++) {
    const block = createHash('sha256').update(`${seed}:${i}`).digest();
    filled += block.copy(out, filled);
  }
  return out;
}

/** A unix socket file at `path` (node removes the one it listens on at close: keep a link). */
async function makeSocket(path: string): Promise<void> {
  const server = createServer();
  const tmp = `${path}.listening`;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, resolve);
  });
  linkSync(tmp, path);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  try {
    unlinkSync(tmp);
  } catch {
    // node removed it
  }
}

export interface TreeOptions {
  /** Add the 5 GiB sparse file (instant to make; mksquashfs needs seconds to read it). */
  readonly huge?: boolean;
  /** Entries in the big folder (default 3000). */
  readonly bigDir?: number;
}

/**
 * Every kind of entry squashfs stores: files (empty, small, exactly one block, blocks and a tail,
 * incompressible, duplicated, sparse, holes in the middle, zero blocks), a folder with thousands of
 * entries, 255-byte names, symlinks, devices, a fifo, a socket, hardlinks, xattrs (user, trusted,
 * security; a long value shared by two sets is stored out of line), setuid/setgid/sticky modes,
 * odd owners and fixed mtimes.
 */
export async function makeTree(root: string, options: TreeOptions = {}): Promise<void> {
  const at = (p: string): string => join(root, p);
  mkdirSync(at('etc/deep/deeper/deepest'), { recursive: true });
  mkdirSync(at('usr/bin'), { recursive: true });
  mkdirSync(at('big'));
  mkdirSync(at('empty'));
  mkdirSync(at('shared'));
  writeFileSync(at('etc/empty-file'), '');
  writeFileSync(at('etc/hello'), 'hello\n');
  writeFileSync(at('etc/deep/deeper/deepest/note'), 'deep\n');
  writeFileSync(at('one-block'), seeded('one-block', 131072));
  writeFileSync(at('blocks-and-tail'), seeded('bt', 3 * 131072 + 1234));
  writeFileSync(at('text'), 'squashfs '.repeat(50_000));
  writeFileSync(at('random'), randomBytes(200_000));
  writeFileSync(at('copy-of-text'), 'squashfs '.repeat(50_000));
  writeFileSync(at('zeros'), Buffer.alloc(3 * 131072 + 17));
  // A hole in the middle: data, a hole up to 2 MiB, data.
  writeFileSync(at('holey'), seeded('holey-a', 70_000));
  execFileSync('truncate', ['-s', String(2 * 1024 * 1024), at('holey')]);
  appendFileSync(at('holey'), seeded('holey-b', 9_000));
  if (options.huge) execFileSync('truncate', ['-s', '5G', at('sparse-5g')]);
  execFileSync('truncate', ['-s', String(40 * 1024 * 1024), at('sparse-40m')]);
  appendFileSync(at('sparse-40m'), 'the end\n');
  for (let i = 0; i < (options.bigDir ?? 3000); i++) writeFileSync(at(`big/entry-${String(i).padStart(5, '0')}`), `${i}\n`.repeat(i % 7));
  writeFileSync(at(`big/${'n'.repeat(255)}`), 'long name\n');
  writeFileSync(at('x'.repeat(255)), 'long name at the top\n');
  symlinkSync('../etc/hello', at('usr/bin/hello-link'));
  symlinkSync('/nowhere/' + 't'.repeat(300), at('long-target-link'));
  symlinkSync('big', at('dir-link'));
  execFileSync('mknod', [at('null'), 'c', '1', '3']);
  execFileSync('mknod', [at('blockdev'), 'b', '8', '300']);
  execFileSync('mknod', [at('chardev-big'), 'c', '4095', '1048575']);
  execFileSync('mkfifo', [at('fifo')]);
  await makeSocket(at('socket'));
  // Hardlinks: three names for one file, two in other folders; a hardlinked fifo.
  writeFileSync(at('etc/linked'), 'linked content\n');
  linkSync(at('etc/linked'), at('usr/bin/linked-2'));
  linkSync(at('etc/linked'), at('shared/linked-3'));
  linkSync(at('fifo'), at('shared/fifo-link'));
  writeFileSync(at('usr/bin/tool'), '#!/bin/sh\necho tool\n');
  chmodSync(at('usr/bin/tool'), 0o4755);
  chmodSync(at('shared'), 0o2775);
  mkdirSync(at('tmp'));
  chmodSync(at('tmp'), 0o1777);
  chmodSync(at('etc/hello'), 0o600);
  execFileSync('chown', ['1234:5678', at('etc/hello'), at('shared')]);
  execFileSync('chown', ['-h', '4000000000:42', at('usr/bin/hello-link')]);
  const longValue = 'v'.repeat(300);
  execFileSync('setfattr', ['-n', 'user.comment', '-v', longValue, at('etc/hello')]);
  execFileSync('setfattr', ['-n', 'user.comment', '-v', longValue, at('one-block')]);
  execFileSync('setfattr', ['-n', 'user.other', '-v', 'x', at('one-block')]);
  execFileSync('setfattr', ['-n', 'security.label', '-v', 'confined', at('usr/bin/tool')]);
  execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', at('shared')]);
  execFileSync('setfattr', ['-h', '-n', 'trusted.link', '-v', 'on-a-symlink', at('usr/bin/hello-link')]);
  execFileSync('setfattr', ['-n', 'user.empty', at('etc/linked')]);
  execFileSync('setfattr', ['-n', 'trusted.dev', '-v', 'on-a-device', at('null')]);
  // Fixed times, folders last (making entries changed theirs).
  const walk = (rel: string, depth: number): void => {
    const st = lstatSync(at(rel));
    const t = 1_600_000_000 + depth * 1000 + rel.length;
    if (st.isDirectory()) for (const name of readdirSync(at(rel))) walk(join(rel, name), depth + 1);
    if (!st.isSymbolicLink()) utimesSync(at(rel), t, t);
  };
  walk('', 0);
  utimesSync(at('etc/hello'), 2_000_000_000, 2_000_000_000);
  utimesSync(at('text'), 100, 100);
}

const sample = Buffer.alloc(1024 * 1024);

function digestOf(path: string, size: number): string {
  // Files over 64 MiB: first, middle and last MiB (reading 5 GiB of zeros twice is slow).
  if (size <= 64 * 1024 * 1024) return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    for (const start of [0, Math.floor(size / 2), size - sample.length]) h.update(sample.subarray(0, readSync(fd, sample, 0, sample.length, start)));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex').slice(0, 16);
}

function xattrsOf(root: string): Map<string, string> {
  const text = execFileSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '.'], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const out = new Map<string, string>();
  for (const block of text.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l !== '');
    const head = lines.shift();
    if (!head?.startsWith('# file: ')) continue;
    const path = head.slice('# file: '.length).replace(/^\.\/?/, '');
    out.set(path, lines.sort().join(' '));
  }
  return out;
}

/**
 * One line per entry (sorted paths): type, mode, owner, links, mtime, size, content digest / link
 * target / device number, xattrs; then one line per hardlink group.
 */
export function describeTree(root: string): string[] {
  const xattrs = xattrsOf(root);
  const lines: string[] = [];
  const groups = new Map<number, string[]>();
  const walk = (rel: string): void => {
    const path = join(root, rel);
    const st = lstatSync(path);
    const kind = st.isDirectory() ? 'd' : st.isFile() ? 'f' : st.isSymbolicLink() ? 'l' : st.isFIFO() ? 'p' : st.isSocket() ? 's' : st.isCharacterDevice() ? 'c' : 'b';
    const what = st.isFile() ? digestOf(path, st.size) : st.isSymbolicLink() ? readlinkSync(path) : st.isBlockDevice() || st.isCharacterDevice() ? `dev ${st.rdev}` : '';
    const size = st.isFile() || st.isSymbolicLink() ? st.size : '';
    lines.push(`${rel || '.'} ${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} n${st.nlink} t${Math.floor(st.mtimeMs / 1000)} ${size} ${what} [${xattrs.get(rel) ?? ''}]`);
    if (!st.isDirectory() && st.nlink > 1) groups.set(st.ino, [...(groups.get(st.ino) ?? []), rel]);
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) walk(rel ? join(rel, name) : name);
  };
  walk('');
  const links = [...groups.values()].map((g) => `hardlinks ${g.sort().join(' ')}`).sort();
  return [...lines, ...links];
}

/** Mounts a squashfs image read-only through a loop device, runs fn, always unmounts. */
export async function withSquashfsMount<T>(image: string, offset: number, mountPoint: string, fn: (dir: string) => T | Promise<T>): Promise<T> {
  mkdirSync(mountPoint, { recursive: true });
  execFileSync('mount', ['-t', 'squashfs', '-o', `loop,ro,offset=${offset}`, image, mountPoint]);
  try {
    return await fn(mountPoint);
  } finally {
    execFileSync('umount', [mountPoint]);
  }
}
