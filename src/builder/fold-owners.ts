import { constants as fsConstants, copyFileSync, linkSync, lutimesSync, mkdirSync, chmodSync, symlinkSync } from 'node:fs';
import { chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { listTree, type ListedEntry } from '../freshness/tree-digest.js';
import { isErrno, nativeAddon } from '../native/addon.js';
import type { Store } from '../store/store.js';
import { singleIdNamespace } from '../core/id-map.js';
import { lastLines, runCommand, type CommandOutcome } from '../core/run-command.js';
import type { DetectedImage } from '../image/detect-image.js';
import { restoreExt3Metadata } from '../image/ext3-metadata.js';
import { copyXattrs } from './copy-up.js';

/**
 * A local folder used as a source (`from: ./rootfs`, a sandbox) in single-id mode, where only id 0
 * exists: files owned by any other host id show as the overflow id (65534) and could be neither
 * stored nor copied up as that. When the folder has such owners, it is copied once into the store
 * with every owner 0 (this process is the namespace's 0, so whatever it makes is 0's), keyed by its
 * tree digest, which covers owners; the copy is then the source. Device files cannot be made in a
 * user namespace: they are left out of the copy, and counted.
 */
export interface FoldedTree {
  /** The folder to stack on: `root` itself when every owner was 0 already, else the store's copy. */
  readonly path: string;
  /** Entries whose owner or group was not 0 (0 when the copy was there already or not needed). */
  readonly ownersFolded: number;
  /** Device files left out of the copy. */
  readonly devicesSkipped: number;
}

const { S_IFMT, S_IFREG, S_IFLNK, S_IFDIR, S_IFCHR, S_IFBLK, S_IFIFO } = fsConstants;

/** See FoldedTree. `digestHex` is the folder's tree digest (hex), which names the copy. */
export async function foldedTree(root: string, digestHex: string, store: Store): Promise<Result<FoldedTree, Diagnostic>> {
  const dest = store.snapshotPath(`local-${digestHex}-single-id`);
  if (await stat(dest).then(() => true, () => false)) return ok({ path: dest, ownersFolded: 0, devicesSkipped: 0 });
  const entries = await listTree(root);
  if (entries.every((e) => e.st.uid === 0 && e.st.gid === 0)) return ok({ path: root, ownersFolded: 0, devicesSkipped: 0 });
  const tmp = await store.makeTempDir('local');
  const out = join(tmp, 'root');
  try {
    let counts: { ownersFolded: number; devicesSkipped: number };
    try {
      counts = copyTree(root, out, entries);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return fail(
        error('tool-failed', `copying ${root} into the store with its owners as 0 (single-id mode): ${err.code ?? 'error'}: ${err.message}`, {
          hint: "every file of a local source must be readable by you in single-id mode; or ask for a /etc/subuid and /etc/subgid range ('usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER')",
        }),
      );
    }
    try {
      await rename(out, dest);
    } catch (e) {
      // Another build made the same copy first: the same content.
      if (!isErrno(e, 'EEXIST') && !isErrno(e, 'ENOTEMPTY')) throw e;
    }
    return ok({ path: dest, ...counts });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Copies `entries` (listTree's: sorted, so each folder before its contents; the root is `.`) of `from` into the new folder `to`, all owned by this process. */
function copyTree(from: string, to: string, entries: readonly ListedEntry[]): { ownersFolded: number; devicesSkipped: number } {
  const addon = nativeAddon();
  let ownersFolded = 0;
  let devicesSkipped = 0;
  const linked = new Map<string, string>();
  const dirs: ListedEntry[] = [];
  for (const e of entries) {
    const src = join(from, e.rel);
    const dst = join(to, e.rel);
    const type = e.st.mode & S_IFMT;
    if (type === S_IFCHR || type === S_IFBLK) {
      devicesSkipped += 1;
      continue;
    }
    if (e.st.uid !== 0 || e.st.gid !== 0) ownersFolded += 1;
    if (type === S_IFDIR) {
      mkdirSync(dst);
      dirs.push(e);
      continue;
    }
    if (type === S_IFLNK) {
      symlinkSync(e.link ?? '', dst);
      lutimesSync(dst, e.st.mtimeMs / 1000, e.st.mtimeMs / 1000);
      continue;
    }
    if (type === S_IFREG) {
      const id = `${e.st.dev}:${e.st.ino}`;
      const first = linked.get(id);
      if (first !== undefined) {
        linkSync(first, dst);
        continue;
      }
      linked.set(id, dst);
      copyFileSync(src, dst, fsConstants.COPYFILE_FICLONE);
    } else if (type === S_IFIFO) addon.mknod(dst, S_IFIFO | (e.st.mode & 0o7777), 0, 0);
    else continue; // a socket: nothing to keep
    chmodSync(dst, e.st.mode & 0o7777);
    copyXattrs(src, dst, { skipRefused: true });
    lutimesSync(dst, e.st.mtimeMs / 1000, e.st.mtimeMs / 1000);
  }
  // Folders last, deepest first, so that their times survive what was written into them.
  for (const e of dirs.reverse()) {
    const dst = join(to, e.rel);
    chmodSync(dst, e.st.mode & 0o7777);
    copyXattrs(join(from, e.rel), dst, { skipRefused: true });
    lutimesSync(dst, e.st.mtimeMs / 1000, e.st.mtimeMs / 1000);
  }
  return { ownersFolded, devicesSkipped };
}

/** `rwsr-xr-t` (ls's nine mode letters) as mode bits. */
export function modeBits(letters: string): number {
  let mode = 0;
  for (let i = 0; i < 9; i += 1) {
    const c = letters[i]!;
    if (c !== '-' && c !== 'S' && c !== 'T') mode |= 1 << (8 - i);
  }
  if ('sS'.includes(letters[2]!)) mode |= 0o4000;
  if ('sS'.includes(letters[5]!)) mode |= 0o2000;
  if ('tT'.includes(letters[8]!)) mode |= 0o1000;
  return mode;
}

/**
 * An image file's tree extracted into the new folder `out` inside a user namespace, where no loop
 * device can be had: `unsquashfs` (squashfs, SIF) or `debugfs rdump` (ext3), as the namespace's 0.
 * Owners the namespace has are kept; in single-id mode every other owner stays the extracting 0's
 * (chown fails), and device files cannot be made: both are counted from the image's own listing.
 * unsquashfs's failed chowns and mknods are "non-fatal errors" (exit status 2), which are exactly
 * these, so its exit code is not taken from them (`-no-exit-code`); a missing tree still fails.
 */
export async function extractImageInNamespace(image: DetectedImage, out: string, signal?: AbortSignal): Promise<Result<Omit<FoldedTree, 'path'>, Diagnostic>> {
  const single = singleIdNamespace();
  const failed = (tool: string, r: CommandOutcome): Diagnostic =>
    error('image-extract-failed', `could not extract ${image.path} with ${tool}: ${lastLines(r.output, 1) || r.kind}`, { hint: `is ${tool} installed (scripts/install-system-deps.sh)?` });
  const opts = signal ? { signal } : {};
  if (image.format === 'squashfs') {
    const listed = await runCommand('unsquashfs', ['-lln', '-o', String(image.offset), image.path], { ...opts, keepBytes: 256 * 1024 * 1024 });
    if (listed.kind !== 'exited' || listed.code !== 0) return fail(failed('unsquashfs', listed));
    let ownersFolded = 0;
    let devicesSkipped = 0;
    const dirModes: [string, number][] = [];
    for (const line of listed.output.split('\n')) {
      const m = /^([-dlcbps])([-rwxsStT]{9}) (\d+)\/(\d+) .*? \d{4}-\d\d-\d\d \d\d:\d\d squashfs-root(.*)$/.exec(line);
      if (!m) continue;
      if (m[1] === 'c' || m[1] === 'b') devicesSkipped += 1;
      else if (single && (m[3] !== '0' || m[4] !== '0')) ownersFolded += 1;
      if (m[1] === 'd') dirModes.push([m[5]!, modeBits(m[2]!)]);
    }
    const r = await runCommand('unsquashfs', ['-n', '-q', '-no-exit-code', '-d', out, '-o', String(image.offset), image.path], opts);
    if (r.kind !== 'exited' || r.code !== 0 || !(await stat(out).then((s) => s.isDirectory(), () => false))) return fail(failed('unsquashfs', r));
    // unsquashfs leaves a folder whose chown failed at 0700 (it skips the chmod): the image's modes again.
    for (const [rel, mode] of dirModes) await chmod(join(out, rel), mode).catch(() => undefined);
    return ok({ ownersFolded, devicesSkipped });
  }
  await mkdir(out);
  const device = image.offset > 0 ? `${image.path}?offset=${image.offset}` : image.path;
  const r = await runCommand('debugfs', ['-R', `rdump / ${out}`, device], opts);
  if (r.kind !== 'exited' || r.code !== 0) return fail(failed('debugfs', r));
  const restored = await restoreExt3Metadata(image, out, { ...opts, singleId: single });
  if (!restored.ok) return restored;
  return ok(restored.value);
}
