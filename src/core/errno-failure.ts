import { readFileSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { error, type Diagnostic } from './diagnostic.js';

/** Where a failure happened, for the message: the target and, when known, the step. */
export interface ErrnoContext {
  readonly target: string;
  readonly step?: string;
}

/** The file system a path is on: its mount point, type and free space (the `df` line). */
export interface FileSystemInfo {
  readonly mountPoint: string;
  readonly type: string;
  readonly freeBytes: number;
  readonly totalBytes: number;
}

const unescapeMount = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/**
 * The mount a path is on (the longest mount point that holds it, from /proc/self/mountinfo) and
 * its free space (statfs of the nearest existing folder). Undefined when neither can be read.
 */
export function fileSystemOf(path: string): FileSystemInfo | undefined {
  let mountPoint = '/';
  let type = 'unknown';
  try {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const fields = line.split(' ');
      const sep = fields.indexOf('-');
      const point = fields[4];
      if (point === undefined || sep < 0) continue;
      const mp = unescapeMount(point);
      const inside = mp === '/' || path === mp || path.startsWith(`${mp}/`);
      // Later lines are mounted over earlier ones at the same point: the last one wins.
      if (inside && mp.length >= mountPoint.length) {
        mountPoint = mp;
        type = fields[sep + 1] ?? 'unknown';
      }
    }
  } catch {
    // No /proc: the mount point stays unknown ('/').
  }
  for (let p = path; ; p = dirname(p)) {
    try {
      const st = statfsSync(p);
      return { mountPoint, type, freeBytes: st.bavail * st.bsize, totalBytes: st.blocks * st.bsize };
    } catch {
      if (p === dirname(p)) return undefined;
    }
  }
}

/** `4.9 MiB` */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** The errno code of a failure that carries one (a Node system error), else undefined. */
export function errnoCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof e === 'object' && e !== null && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** The paths a system error names (`path`, and `dest` for rename, copy and link). */
function errnoPaths(e: unknown): string[] {
  const { path, dest } = e as { path?: unknown; dest?: unknown };
  return [path, dest].filter((p): p is string => typeof p === 'string');
}

/**
 * A failure of the system (a full disk, a read-only or unwritable folder) as the Diagnostic of the
 * target it hit: the errno, the path, and what to do, with the file system for ENOSPC and EROFS.
 * Undefined for anything that is not a system error: that is a bug, and stays one.
 */
export function errnoDiagnostic(e: unknown, context: ErrnoContext): Diagnostic | undefined {
  const code = errnoCode(e);
  if (code === undefined) return undefined;
  const paths = errnoPaths(e);
  const path = paths[paths.length - 1] ?? paths[0];
  const syscall = (e as { syscall?: unknown }).syscall;
  const where = `${context.target}${context.step ? ` (${context.step})` : ''}`;
  const on = path !== undefined ? ` ${path}` : '';
  const call = typeof syscall === 'string' ? ` (${syscall})` : '';
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT': {
      const fs = path !== undefined ? fileSystemOf(path) : undefined;
      const fsText = fs ? `: the file system at ${fs.mountPoint} (${fs.type}) has ${formatBytes(fs.freeBytes)} free of ${formatBytes(fs.totalBytes)}` : '';
      const what = code === 'ENOSPC' ? 'no space left on device' : 'disk quota exceeded';
      return error('no-space', `${where}: ${code}, ${what}, writing${on}${call}${fsText}`, {
        hint: `free space on ${fs?.mountPoint ?? 'that file system'}, or point the output (or the cache) at a file system with room`,
      });
    }
    case 'EROFS': {
      const fs = path !== undefined ? fileSystemOf(path) : undefined;
      return error('read-only', `${where}: EROFS, read-only file system, writing${on}${call}${fs ? ` (mounted read-only at ${fs.mountPoint})` : ''}`, {
        hint: `remount ${fs?.mountPoint ?? 'it'} read-write, or point the output (or the cache) at a writable folder`,
      });
    }
    case 'EACCES':
    case 'EPERM':
      return error('not-writable', `${where}: ${code}, permission denied${on}${call}: the path is not writable by this user (or is immutable)`, {
        hint: 'fix its owner or mode (or chattr -i), or point the output (or the cache) at a writable folder',
      });
    default:
      return error('system-error', `${where}: ${code}${on}${call}: ${(e as Error).message}`, {
        hint: 'the operating system refused the operation; the message above is its own',
      });
  }
}

const TOOL_ERRNO: ReadonlyArray<readonly [RegExp, string]> = [
  [/No space left on device/i, 'ENOSPC'],
  [/Disk quota exceeded/i, 'EDQUOT'],
  [/Read-only file system/i, 'EROFS'],
];

/**
 * A tool's failure (mksquashfs, cp, mkfs) whose own output says the disk is full or read-only:
 * the same diagnostic, with the errno and the file system of `path` (where it was writing) added.
 * Other diagnostics are returned as they are.
 */
export function withFileSystemCause(d: Diagnostic, path: string): Diagnostic {
  const hit = TOOL_ERRNO.find(([re]) => re.test(d.message));
  if (!hit) return d;
  const fs = fileSystemOf(path);
  if (!fs) return d;
  const code = hit[1];
  const state = code === 'EROFS' ? `is mounted read-only` : `has ${formatBytes(fs.freeBytes)} free of ${formatBytes(fs.totalBytes)}`;
  return {
    ...d,
    message: `${d.message}\n${code}: the file system at ${fs.mountPoint} (${fs.type}) holding ${path} ${state}`,
    hint: code === 'EROFS' ? `remount ${fs.mountPoint} read-write, or point the output at a writable folder` : `free space on ${fs.mountPoint}, or point the output at a file system with room`,
  };
}
