import { closeSync, constants, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { isErrno, nativeAddon } from '../native/addon.js';

/**
 * Writable sessions and the builds that replace images (docs/ARCHITECTURE.md, Runtime): a `shell`/`exec`/`run`/
 * `test --writable` on a sandbox or an ext3 image holds a shared flock on a lock file beside the
 * image, outside its tree, for as long as it runs; `up` and `clean` test it with a non-blocking
 * exclusive flock before they replace or remove the image, and refuse while it is held (there is
 * no --force for it: the session would lose its root under its feet). The lock lives in the
 * orchestrator process that waits for the session; the starter does not inherit it (O_CLOEXEC),
 * and a killed orchestrator takes its session with it (PDEATHSIG), so the lock never outlives it.
 * The file holds "PID ACTION" of the last session that took it, to name it in the refusal.
 */

/** `<parent>/.<name>.orchestrator-writable`. */
export function writableLockPath(imagePath: string): string {
  const abs = resolve(imagePath);
  return resolve(dirname(abs), `.${basename(abs)}.orchestrator-writable`);
}

export interface WritableSessionLock {
  release(): void;
}

/**
 * Takes the shared lock for a writable session on `imagePath`. Undefined when the lock file cannot
 * be made (a folder the caller cannot write to: nothing of the caller's can replace that image).
 */
export function holdWritableLock(imagePath: string, action: string): WritableSessionLock | undefined {
  const path = writableLockPath(imagePath);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    // A folder the caller cannot write to, or a symlink planted at the name (never followed).
    if (['EACCES', 'EROFS', 'EPERM', 'ENOENT', 'ELOOP'].some((code) => isErrno(e, code))) return undefined;
    throw e;
  }
  const addon = nativeAddon();
  // An exclusive holder is only ever a short check by up or clean: wait for it.
  addon.flock(fd, addon.constants.LOCK_SH);
  try {
    const text = Buffer.from(`${process.pid} ${action}\n`);
    // Written whole at offset 0 and never truncated: a longer earlier text keeps its tail, which
    // the reader ignores (it takes the first line).
    writeSync(fd, Buffer.concat([text, Buffer.alloc(Math.max(0, 32 - text.length), '\n')]), 0, undefined, 0);
  } catch {
    // informational only
  }
  return {
    release: () => {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    },
  };
}

/** The pids holding a flock on the file (dev, ino), from /proc/locks. */
function flockHolders(dev: bigint, ino: bigint): number[] {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const pids: number[] = [];
  let text = '';
  try {
    text = readFileSync('/proc/locks', 'utf8');
  } catch {
    return pids;
  }
  for (const line of text.split('\n')) {
    // "1: FLOCK  ADVISORY  READ  1234 08:01:5678 0 EOF" (a blocked waiter has "->" after the number)
    const m = /^\d+:\s+FLOCK\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (!m) continue;
    if (BigInt(`0x${m[2]}`) === major && BigInt(`0x${m[3]}`) === minor && BigInt(m[4]!) === ino) pids.push(Number(m[1]));
  }
  return pids;
}

/** Who holds a writable session open on `imagePath`, or undefined when none does. */
export function writableSessionHolder(imagePath: string): { pid: number; action: string } | undefined {
  const path = writableLockPath(imagePath);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    if (isErrno(e, 'ENOENT') || isErrno(e, 'ELOOP')) return undefined;
    throw e;
  }
  try {
    const addon = nativeAddon();
    if (addon.flock(fd, addon.constants.LOCK_EX | addon.constants.LOCK_NB)) return undefined;
    const [pidText, action] = readFileSync(path, 'utf8').split('\n')[0]!.split(' ');
    const st = statSync(path, { bigint: true });
    const holders = flockHolders(st.dev, st.ino);
    const written = Number(pidText);
    if (holders.includes(written) || holders.length === 0) return { pid: written, action: action ?? 'session' };
    return { pid: holders[0]!, action: 'session' };
  } finally {
    closeSync(fd);
  }
}

/**
 * The refusal of `up` and `clean` to replace or remove an image open in a writable session.
 * `shown` is the image's path as the command shows it (relative to the project).
 */
export function outputInUse(kind: string, shown: string, holder: { pid: number; action: string }, location?: Diagnostic['location']): Diagnostic {
  const what = holder.action === 'session' ? 'a writable session' : `a writable ${holder.action}`;
  return error('output-in-use', `${kind} ${shown} is open in ${what} (pid ${holder.pid})`, {
    ...(location ? { location } : {}),
    hint: `end that session first; --force does not override this (it would pull the image from under it)`,
  });
}
