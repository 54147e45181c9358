import { spawn, type StdioOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { error } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { unreachable } from '../core/unreachable.js';

/** Flags of a bind mount (native/README.md). */
export type BindFlag = 'ro' | 'rw' | 'nosuid' | 'nodev' | 'norec' | 'mkpoint' | 'optional' | 'ifmissing';

/** One operation of the starter, run in order (native/README.md). */
export type StarterOp =
  | { readonly op: 'session'; readonly target: string; readonly data: string }
  | { readonly op: 'tmpfs'; readonly target: string; readonly data?: string }
  | { readonly op: 'mkdir'; readonly path: string }
  | { readonly op: 'chmod'; readonly path: string; readonly mode: number }
  | { readonly op: 'bind'; readonly source: string; readonly target: string; readonly flags: readonly BindFlag[] }
  | { readonly op: 'overlay'; readonly target: string; readonly lowers: readonly string[]; readonly upper?: string; readonly work?: string }
  | { readonly op: 'image'; readonly type: 'squashfs' | 'ext3'; readonly file: string; readonly offset: number; readonly target: string; readonly writable: boolean }
  /** Read-only through FUSE (squashfuse, fuse2fs) inside the session's user namespace: for callers that are not root. */
  | { readonly op: 'fuse'; readonly type: 'squashfs' | 'ext3'; readonly helper: string; readonly file: string; readonly offset: number; readonly target: string }
  | { readonly op: 'proc' | 'sysfs' | 'devpts'; readonly target: string }
  | { readonly op: 'append-line'; readonly source: string; readonly target: string; readonly prefix: string; readonly line: string }
  | { readonly op: 'remount-ro'; readonly path: string }
  | { readonly op: 'pivot'; readonly newRoot: string };

/** Everything the starter does, as data. */
export interface StarterPlan {
  /** New user namespace mapping only the caller (for callers that are not root). */
  readonly userns: boolean;
  readonly pidns: boolean;
  readonly ops: readonly StarterOp[];
  /** Working folders to try, in order. */
  readonly cwd: readonly string[];
  /** The command's whole environment; undefined passes the starter's own on. */
  readonly env?: Readonly<Record<string, string>>;
  readonly uid?: number;
  readonly gid?: number;
  readonly groups?: readonly number[];
  readonly noNewPrivs: boolean;
  readonly command: readonly string[];
  /** Run instead of `command` when its program does not exist (an image without /bin/sh). */
  readonly fallback?: readonly string[];
}

/** The starter's exit status for its own failures. */
export const STARTER_FAILURE = 255;

/** Where `npm run build` puts the starter: native/starter/starter, two folders above this file. */
export function starterPath(): string {
  return fileURLToPath(new URL('../../native/starter/starter', import.meta.url));
}

function flags(list: readonly string[]): string {
  return list.length === 0 ? '-' : list.join(',');
}

/** The argument vector for a plan (native/README.md). */
export function starterArgv(plan: StarterPlan): string[] {
  const argv: string[] = [];
  if (plan.userns) argv.push('--userns');
  if (plan.pidns) argv.push('--pidns');
  for (const o of plan.ops) {
    switch (o.op) {
      case 'session':
        argv.push('--session', o.target, o.data);
        break;
      case 'tmpfs':
        argv.push('--tmpfs', o.target, o.data ?? '-');
        break;
      case 'mkdir':
        argv.push('--mkdir', o.path);
        break;
      case 'chmod':
        argv.push('--chmod', o.path, o.mode.toString(8));
        break;
      case 'bind':
        argv.push('--bind', o.source, o.target, flags(o.flags));
        break;
      case 'overlay':
        argv.push('--overlay', o.target, o.lowers.join(':'), o.upper ?? '-', o.work ?? '-');
        break;
      case 'image':
        argv.push('--image', o.type, o.file, String(o.offset), o.target, o.writable ? 'rw' : 'ro');
        break;
      case 'fuse':
        argv.push('--fuse', o.type, o.helper, o.file, String(o.offset), o.target);
        break;
      case 'proc':
      case 'sysfs':
      case 'devpts':
        argv.push(`--${o.op}`, o.target);
        break;
      case 'append-line':
        argv.push('--append-line', o.source, o.target, o.prefix, o.line);
        break;
      case 'remount-ro':
        argv.push('--remount-ro', o.path);
        break;
      case 'pivot':
        argv.push('--pivot', o.newRoot);
        break;
      default:
        unreachable(o);
    }
  }
  for (const dir of plan.cwd) argv.push('--cwd', dir);
  if (plan.env) for (const [k, v] of Object.entries(plan.env)) argv.push('--env', `${k}=${v}`);
  if (plan.groups) argv.push('--groups', plan.groups.join(','));
  if (plan.gid !== undefined) argv.push('--gid', String(plan.gid));
  if (plan.uid !== undefined) argv.push('--uid', String(plan.uid));
  if (plan.noNewPrivs) argv.push('--no-new-privs');
  if (plan.fallback && plan.fallback.length > 0) argv.push('--fallback', String(plan.fallback.length), ...plan.fallback);
  argv.push('--', ...plan.command);
  return argv;
}

export interface StarterExit {
  /** The command's exit status (128+n for a signal n); 255 is also the starter's own failure. */
  readonly exitCode: number;
  /** Set when we stopped it because the signal was aborted. */
  readonly interrupted: boolean;
}

export interface RunStarterOptions {
  readonly stdio?: StdioOptions;
  /**
   * Own process group (default). An interactive session on a terminal must stay in the
   * terminal's foreground group instead: pass false, and the terminal's signals reach it directly.
   */
  readonly detached?: boolean;
  /**
   * Forward this process's SIGINT/SIGTERM to the session as they come (what `exec`/`run` want: the
   * container decides what an interrupt means). Default false.
   */
  readonly forwardSignals?: boolean;
  /** On abort, SIGTERM goes to the starter's process group (SIGKILL 5 s later). */
  readonly signal?: AbortSignal;
}

/** Spawns the starter for a plan and waits for it. Fails only when the starter is missing. */
export function runStarter(plan: StarterPlan, options: RunStarterOptions = {}): Promise<Result<StarterExit>> {
  const path = starterPath();
  try {
    accessSync(path, constants.X_OK);
  } catch {
    return Promise.resolve(
      fail(error('starter-missing', `the starter is not built: ${path} is missing`, { hint: "run 'npm run build' (it needs make and a C compiler)" })),
    );
  }
  const detached = options.detached ?? true;
  if (options.signal?.aborted) return Promise.resolve(ok({ exitCode: 130, interrupted: true }));
  return new Promise((resolvePromise) => {
    const child = spawn(path, starterArgv(plan), { stdio: options.stdio ?? 'inherit', detached });
    let interrupted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const sendSignal = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        if (detached) process.kill(-child.pid, sig);
        else child.kill(sig);
      } catch {
        // already gone
      }
    };
    const onAbort = (): void => {
      interrupted = true;
      sendSignal('SIGTERM');
      killTimer = setTimeout(() => sendSignal('SIGKILL'), 5000);
      killTimer.unref();
    };
    // Forward the caller's SIGINT/SIGTERM to the session (its own group does not get the terminal's).
    const forward = (sig: NodeJS.Signals): void => sendSignal(sig);
    const forwarding = detached && options.forwardSignals === true;
    if (forwarding) {
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const done = (r: Result<StarterExit>): void => {
      if (killTimer) clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
      if (forwarding) {
        process.off('SIGINT', forward);
        process.off('SIGTERM', forward);
      }
      resolvePromise(r);
    };
    child.on('error', (e) => done(fail(error('starter-failed', `could not start ${path}: ${e.message}`))));
    child.on('exit', (code, sig) => {
      const exitCode = code ?? (sig ? 128 + signalNumber(sig) : STARTER_FAILURE);
      done(ok({ exitCode, interrupted }));
    });
  });
}

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

function signalNumber(sig: NodeJS.Signals): number {
  return SIGNAL_NUMBERS[sig] ?? 1;
}
