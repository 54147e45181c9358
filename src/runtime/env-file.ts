import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { error } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';

/** Variables bash sets by itself; never taken from an env file's result. */
const BASH_OWN = new Set(['PWD', 'OLDPWD', 'SHLVL', '_', '__orchestrator_env']);

/**
 * The variables an `--env-file` sets. Apptainer evaluates the file with its built-in
 * bash-compatible interpreter (mvdan.cc/sh) in an empty environment; here the host's bash does the
 * same, with `set -a` (every assignment is exported), no profile, no rc files and an environment
 * holding only what is given in `base` (the file may build on them, `${X:-default}`). A file bash
 * rejects is an `env-file-invalid` Diagnostic with bash's message.
 */
export function readEnvFile(path: string, options: { base?: Readonly<Record<string, string>> } = {}): Result<Record<string, string>> {
  try {
    readFileSync(path);
  } catch (e) {
    return fail(error('env-file-not-found', `--env-file: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`, { hint: 'give an existing file of KEY=VALUE lines' }));
  }
  // NUL-separated output, so values may hold newlines.
  const r = spawnSync('bash', ['--noprofile', '--norc', '-c', '__orchestrator_env=$(command -v env) || exit 127; set -a; . "$1" >/dev/null || exit 1; "$__orchestrator_env" -0', 'env-file', path], {
    env: { ...(options.base ?? {}) },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) return fail(error('env-file-invalid', `--env-file ${path}: cannot run bash: ${r.error.message}`, { hint: 'install bash on the host' }));
  if (r.status !== 0) {
    const first = r.stderr.trim().split('\n')[0] ?? '';
    const message = first === '' ? `bash exited with status ${r.status}` : first.startsWith(`${path}: `) ? first.slice(path.length + 2) : first;
    return fail(error('env-file-invalid', `--env-file ${path}: ${message}`, { hint: 'the file is read by bash: fix the line it names' }));
  }
  const out: Record<string, string> = {};
  for (const item of r.stdout.split('\0')) {
    const eq = item.indexOf('=');
    if (eq <= 0) continue;
    const key = item.slice(0, eq);
    if (BASH_OWN.has(key) || options.base?.[key] === item.slice(eq + 1)) continue;
    out[key] = item.slice(eq + 1);
  }
  return ok(out);
}
