import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { error } from '../core/diagnostic.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { fail, ok, type Result } from '../core/result.js';
import type { DetectedImage } from '../image/detect-image.js';

async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const stream = createReadStream(path, signal ? { signal } : {});
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function runTool(cmd: string, args: readonly string[], signal?: AbortSignal): Promise<{ code: number; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(signal ? { signal } : {}) });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', (e) => resolvePromise({ code: 127, stderr: e.message }));
    child.on('close', (code) => resolvePromise({ code: code ?? 1, stderr }));
  });
}

/**
 * As the caller, who is not root, every extracted file is theirs. To keep what the image let them
 * do, each mode's user and group bits become its "other" bits (set-id bits dropped, sticky kept):
 * a root-owned 0755 folder becomes 0555, so `touch /hello.txt` is still "Permission denied".
 */
async function reduceToOtherBits(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isSymbolicLink()) continue;
    if (e.isDirectory()) await reduceToOtherBits(p);
    const mode = (await lstat(p)).mode;
    const other = mode & 0o7;
    await chmod(p, (mode & 0o1000) | (other << 6) | (other << 3) | other);
  }
}

async function makeRemovable(dir: string): Promise<void> {
  try {
    await chmod(dir, 0o700);
    for (const e of await readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await makeRemovable(join(dir, e.name));
  } catch {
    // best effort
  }
}

/**
 * Extracts an image file once into the caller's cache, keyed by its digest (docs/ARCHITECTURE.md, Runtime: loop
 * devices are root's and /dev/fuse is root-only here). Returns the root folder of the extraction.
 * A stat index (device, inode, size, times) skips re-hashing an unchanged file.
 */
export async function extractImage(image: DetectedImage, options: { cacheDir: string; signal?: AbortSignal }): Promise<Result<string>> {
  const base = join(options.cacheDir, 'extracted');
  await mkdir(join(base, 'index'), { recursive: true, mode: 0o700 });
  const st = await stat(image.path, { bigint: true });
  const statKey = createHash('sha256').update(`${image.path}\0${st.dev}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}`).digest('hex');
  const indexFile = join(base, 'index', statKey);
  let hex: string;
  try {
    hex = (await readFile(indexFile, 'utf8')).trim();
  } catch {
    hex = await sha256File(image.path, options.signal);
    await writeFileAtomic(indexFile, hex + '\n');
  }
  const rootfs = join(base, hex);
  try {
    await stat(rootfs);
    return ok(rootfs);
  } catch {
    // not extracted yet
  }
  const tmp = join(base, `.tmp-${hex.slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    let r: { code: number; stderr: string };
    if (image.format === 'squashfs') {
      r = await runTool('unsquashfs', ['-n', '-q', '-d', tmp, '-o', String(image.offset), image.path], options.signal);
    } else if (image.format === 'ext3') {
      await mkdir(tmp, { mode: 0o700 });
      const device = image.offset > 0 ? `${image.path}?offset=${image.offset}` : image.path;
      r = await runTool('debugfs', ['-R', `rdump / ${tmp}`, device], options.signal);
      // debugfs cannot chown as a user and says so per file; only a missing tree is a failure.
      if (r.code === 0 && (await readdir(tmp)).length === 0) r = { code: 1, stderr: r.stderr };
    } else {
      return fail(error('image-not-a-file', `${image.path} is a sandbox folder, not an image file`));
    }
    if (r.code !== 0) {
      const tool = image.format === 'squashfs' ? 'unsquashfs' : 'debugfs';
      const detail = r.stderr.trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit status ${r.code}`;
      return fail(error('image-extract-failed', `could not extract ${image.path} with ${tool}: ${detail}`, { hint: `is ${tool} installed (scripts/install-system-deps.sh)?` }));
    }
    await reduceToOtherBits(tmp);
    const rootMode = (await lstat(tmp)).mode & 0o7;
    await chmod(tmp, (rootMode << 6) | (rootMode << 3) | rootMode);
    try {
      await rename(tmp, rootfs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      // another process finished first: theirs is as good as ours
    }
    return ok(rootfs);
  } finally {
    try {
      await stat(tmp);
      await makeRemovable(tmp);
      await rm(tmp, { recursive: true, force: true });
    } catch {
      // gone
    }
  }
}
