import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * The mounts and loop devices that concern one test folder (other test files may run containers at
 * the same time): for checking that nothing is left behind.
 */
export function mountProbe(folder: () => string): { mountinfo: () => string; loops: () => string } {
  const mine = (text: string): string =>
    text
      .split('\n')
      .filter((l) => l.includes(folder()))
      .join('\n');
  return {
    mountinfo: () => mine(readFileSync('/proc/self/mountinfo', 'utf8')),
    loops: () => mine(execFileSync('losetup', ['-a'], { encoding: 'utf8' })),
  };
}
