import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { unreachable } from '../core/unreachable.js';
import type { DetectedImage } from './detect-image.js';

function capture(cmd: string, args: readonly string[], signal?: AbortSignal): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? 1, stdout: Buffer.concat(out), stderr }));
  });
}

function debugfsDevice(image: DetectedImage): string {
  return image.offset > 0 ? `${image.path}?offset=${image.offset}` : image.path;
}

/**
 * Reads one file of an image without mounting it (sandbox: the file; squashfs: `unsquashfs -cat`;
 * ext3: `debugfs cat`), so `inspect` works for every user. Undefined when the file is not there.
 */
export async function readImageFile(image: DetectedImage, path: string, options: { signal?: AbortSignal } = {}): Promise<Buffer | undefined> {
  switch (image.format) {
    case 'sandbox':
      try {
        return await readFile(join(image.path, path));
      } catch {
        return undefined;
      }
    case 'squashfs': {
      const r = await capture('unsquashfs', ['-o', String(image.offset), '-cat', image.path, path], options.signal);
      return r.code === 0 ? r.stdout : undefined;
    }
    case 'ext3': {
      const r = await capture('debugfs', ['-R', `cat ${path}`, debugfsDevice(image)], options.signal);
      if (r.code !== 0 || /File not found|not a regular file|Ext2 inode is not a directory/i.test(r.stderr)) return undefined;
      return r.stdout;
    }
    default:
      return unreachable(image.format);
  }
}

/** Names of the regular files in a folder of an image, sorted; empty when the folder is missing. */
export async function listImageFiles(image: DetectedImage, dir: string, options: { signal?: AbortSignal } = {}): Promise<string[]> {
  switch (image.format) {
    case 'sandbox':
      try {
        const entries = await readdir(join(image.path, dir), { withFileTypes: true });
        return entries.filter((e) => e.isFile() || e.isSymbolicLink()).map((e) => e.name).sort();
      } catch {
        return [];
      }
    case 'squashfs': {
      const r = await capture('unsquashfs', ['-o', String(image.offset), '-lc', '-d', '', image.path, dir], options.signal);
      if (r.code !== 0) return [];
      const prefix = dir.endsWith('/') ? dir : `${dir}/`;
      return r.stdout
        .toString('utf8')
        .split('\n')
        .filter((l) => l.startsWith(prefix) && !l.slice(prefix.length).includes('/') && l.length > prefix.length)
        .map((l) => l.slice(prefix.length))
        .sort();
    }
    case 'ext3': {
      const r = await capture('debugfs', ['-R', `ls -p ${dir}`, debugfsDevice(image)], options.signal);
      if (r.code !== 0) return [];
      const names: string[] = [];
      for (const line of r.stdout.toString('utf8').split('\n')) {
        // /inode/mode/uid/gid/name/size/
        const f = line.split('/');
        if (f.length < 7) continue;
        const mode = parseInt(f[2]!, 8);
        if ((mode & 0o170000) === 0o100000) names.push(f[5]!);
      }
      return names.sort();
    }
    default:
      return unreachable(image.format);
  }
}
