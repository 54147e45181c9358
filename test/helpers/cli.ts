import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = fileURLToPath(new URL('../../bin/orchestrator.js', import.meta.url));

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

/** Runs the CLI in this process (fast; for front-end tests). */
export async function runCliInProcess(
  argv: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  const out = collect();
  const err = collect();
  const code = await main(argv, {
    ctx: {
      cwd: options.cwd ?? process.cwd(),
      env: options.env ?? { ...process.env, NO_COLOR: '1' },
      stdout: out.stream,
      stderr: err.stream,
      signal: new AbortController().signal,
    },
  });
  return { code, stdout: out.text(), stderr: err.text() };
}

/** Runs the built CLI (bin/orchestrator.js → dist/) as a child process, as a user would. */
export function runCli(
  argv: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; signal?: AbortSignal } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    // `--`: Node 20 would take an argument `--env-file FILE` after the script as its own (nodejs/node#54232).
    const child = spawn(process.execPath, ['--', BIN, ...argv], {
      cwd: options.cwd ?? process.cwd(),
      env: { ...(options.env ?? process.env), NO_COLOR: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.stdin.end(options.input ?? '');
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 + (signal === 'SIGKILL' ? 9 : 15) : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
  });
}
