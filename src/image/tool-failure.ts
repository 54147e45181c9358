import { error, type Diagnostic } from '../core/diagnostic.js';
import { lastLines, type CommandOutcome } from '../core/run-command.js';
import { unreachable } from '../core/unreachable.js';

const PACKAGE_OF: Readonly<Record<string, string>> = {
  mksquashfs: 'squashfs-tools',
  unsquashfs: 'squashfs-tools',
  'mkfs.ext3': 'e2fsprogs',
  debugfs: 'e2fsprogs',
  cp: 'coreutils',
  debootstrap: 'debootstrap',
};

/** A diagnostic for an external tool that did not succeed, or undefined when it did. */
export function toolFailure(tool: string, what: string, outcome: CommandOutcome): Diagnostic | undefined {
  switch (outcome.kind) {
    case 'exited':
      if (outcome.code === 0) return undefined;
      return error('tool-failed', `${what}: ${tool} exited with status ${outcome.code}\n${lastLines(outcome.output, 20)}`.trimEnd(), {
        hint: `the lines above are ${tool}'s own output`,
      });
    case 'signalled':
      return error('tool-failed', `${what}: ${tool} was killed by ${outcome.signal}`);
    case 'aborted':
      return error('interrupted', `${what}: interrupted`);
    case 'spawn-failed':
      if (outcome.code === 'ENOENT') {
        const pkg = PACKAGE_OF[tool] ?? tool;
        return error('tool-missing', `${what}: '${tool}' is not installed`, { hint: `install it: apt-get install ${pkg}` });
      }
      return error('tool-failed', `${what}: could not start ${tool}: ${outcome.message}`);
    default:
      return unreachable(outcome);
  }
}
