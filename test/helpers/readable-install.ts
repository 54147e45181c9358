import { chmodSync, cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './cli.js';

/**
 * A copy of the built CLI (bin/, dist/, package.json, the starter) in `dir`, readable by every
 * user, for tests that run the CLI as another user: a fresh clone under /root is not.
 * Returns the path of its bin/orchestrator.js.
 */
export function readableInstall(dir: string): string {
  mkdirSync(join(dir, 'native', 'starter'), { recursive: true });
  for (const part of ['bin', 'dist', 'package.json']) cpSync(join(REPO_ROOT, part), join(dir, part), { recursive: true });
  cpSync(join(REPO_ROOT, 'native', 'starter', 'starter'), join(dir, 'native', 'starter', 'starter'));
  const open = (p: string): void => chmodSync(p, 0o755);
  for (const p of [dir, join(dir, 'native'), join(dir, 'native', 'starter')]) open(p);
  return join(dir, 'bin', 'orchestrator.js');
}
