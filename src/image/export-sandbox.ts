import { mkdir, rename, rm, stat } from 'node:fs/promises';
import type { Diagnostic } from '../core/diagnostic.js';
import { tempSibling } from '../core/fs-atomic.js';
import { fail, ok, type Result } from '../core/result.js';
import { inChildUserNamespace } from '../core/id-map.js';
import { runCommand, type CommandOutcome, type CommandRunner } from '../core/run-command.js';
import { toolFailure } from './tool-failure.js';

export interface ExportSandboxOptions {
  readonly source: string;
  /** The sandbox folder to (re)place. */
  readonly output: string;
  /** Runs the tools (default: directly; the build engine runs them inside a mount session). */
  readonly run?: CommandRunner;
  readonly signal?: AbortSignal;
}

/**
 * Replaces folder `dest` by folder `fresh` (a sibling): the old one is moved aside, the new one
 * renamed into place, the old one removed. A crash between the two renames leaves the old folder
 * under its aside name, never a half-copied `dest`.
 */
export async function replaceDirectory(fresh: string, dest: string): Promise<void> {
  const exists = await stat(dest).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await rename(fresh, dest);
    return;
  }
  const aside = tempSibling(dest);
  await rename(dest, aside);
  try {
    await rename(fresh, dest);
  } catch (e) {
    await rename(aside, dest);
    throw e;
  }
  await rm(aside, { recursive: true, force: true });
}

/**
 * Copies a root file system into a sandbox folder with everything a root file system needs
 * (owners, modes, hard and symbolic links, devices, fifos, xattrs, times), into a temp sibling
 * first, then swaps it into place.
 */
export async function exportSandbox(options: ExportSandboxOptions): Promise<Result<{ path: string }, Diagnostic>> {
  const tmp = tempSibling(options.output.replace(/\/+$/, ''));
  const dest = options.output.replace(/\/+$/, '');
  await mkdir(tmp, { mode: 0o755 });
  try {
    const outcome = await (options.run ?? runCommand)('cp', ['-a', '--reflink=auto', '--preserve=all', `${options.source}/.`, tmp], options.signal ? { signal: options.signal } : {});
    const failure = onlyDevicesLeftOut(outcome) ? undefined : toolFailure('cp', `sandbox export of ${options.source}`, outcome);
    if (failure) {
      await rm(tmp, { recursive: true, force: true });
      return fail(failure);
    }
    await replaceDirectory(tmp, dest);
    return ok({ path: dest });
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * In a user namespace (a build without root) no device file but 0/0 can be made: cp copies
 * everything else and says so for each device. That alone is not a failure: the sandbox goes
 * without them, as the layers did (a container's /dev is bound from the host at run time).
 */
function onlyDevicesLeftOut(outcome: CommandOutcome): boolean {
  if (outcome.kind !== 'exited' || outcome.code !== 1 || !inChildUserNamespace()) return false;
  const lines = outcome.output.split('\n').filter((l) => l !== '');
  // The kept output may start in the middle of a line.
  return lines.length > 0 && lines.slice(1).every((l) => /^cp: cannot create special file '.*': Operation not permitted$/.test(l)) && /Operation not permitted$/.test(lines[0]!);
}
