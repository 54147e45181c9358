import { spawn } from 'node:child_process';

export interface RunCommandOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Bytes written to the child's stdin. */
  readonly input?: string | Uint8Array;
  /** Called with each chunk of stdout/stderr as it arrives (for logs and progress). */
  readonly onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  /** How many bytes of combined output to keep for the result (the tail). Default 64 KiB. */
  readonly keepBytes?: number;
  /** Grace period between SIGTERM and SIGKILL when aborted. Default 3 s. */
  readonly killAfterMs?: number;
  readonly signal?: AbortSignal;
}

/** How a child ended: we killed it, it died of a signal, or it exited (maybe non-zero). */
export type CommandOutcome =
  | { readonly kind: 'exited'; readonly code: number; readonly output: string }
  | { readonly kind: 'signalled'; readonly signal: NodeJS.Signals; readonly output: string }
  | { readonly kind: 'aborted'; readonly output: string }
  | { readonly kind: 'spawn-failed'; readonly message: string; readonly code: string | undefined; readonly output: string };

/**
 * Runs a program in its own process group. On abort, SIGTERM goes to the whole group, then SIGKILL
 * after a grace period. Never throws: every way it can end is a value.
 */
export function runCommand(file: string, args: readonly string[], options: RunCommandOptions = {}): Promise<CommandOutcome> {
  const keep = options.keepBytes ?? 64 * 1024;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    const remember = (c: Buffer): void => {
      chunks.push(c);
      kept += c.length;
      while (kept > keep && chunks.length > 1) kept -= chunks.shift()!.length;
    };
    const output = (): string => {
      const all = Buffer.concat(chunks);
      return all.subarray(Math.max(0, all.length - keep)).toString('utf8');
    };
    if (options.signal?.aborted) {
      resolve({ kind: 'aborted', output: '' });
      return;
    }
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      aborted = true;
      const pid = child.pid;
      if (pid === undefined) return;
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      killTimer = setTimeout(() => {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, options.killAfterMs ?? 3000);
      killTimer.unref();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout!.on('data', (c: Buffer) => {
      remember(c);
      options.onOutput?.(c, 'stdout');
    });
    child.stderr!.on('data', (c: Buffer) => {
      remember(c);
      options.onOutput?.(c, 'stderr');
    });
    if (options.input !== undefined) {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(options.input);
    }
    child.on('error', (e: NodeJS.ErrnoException) => {
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ kind: 'spawn-failed', message: e.message, code: e.code, output: output() });
    });
    child.on('close', (code, sig) => {
      options.signal?.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      if (aborted) resolve({ kind: 'aborted', output: output() });
      else if (sig) resolve({ kind: 'signalled', signal: sig, output: output() });
      else resolve({ kind: 'exited', code: code ?? 0, output: output() });
    });
  });
}

/** Something that runs a program: runCommand itself, or a wrapper that runs it inside a session. */
export type CommandRunner = (file: string, args: readonly string[], options?: RunCommandOptions) => Promise<CommandOutcome>;

/** The last `n` lines of a command's output, for error messages. */
export function lastLines(text: string, n: number): string {
  const lines = text.replace(/\n+$/, '').split('\n');
  return lines.slice(-n).join('\n');
}
