import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands.js';
import { REPO_ROOT } from '../helpers/cli.js';

/**
 * The README shows nothing that does not run: every concrete `orchestrator ...` command in its code
 * blocks is run by .ci/run (scripts/ci-quickstart.sh), and every synopsis names real commands and
 * real options.
 */
const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const ciScript = readFileSync(join(REPO_ROOT, 'scripts/ci-quickstart.sh'), 'utf8');
const ciRun = readFileSync(join(REPO_ROOT, '.ci/run'), 'utf8');

function commandLines(): string[] {
  const out: string[] = [];
  for (const block of readme.matchAll(/```(?:sh)?\n([\s\S]*?)```/g)) {
    for (const raw of block[1]!.split('\n')) {
      const line = raw.replace(/^\$ /, '').replace(/\s+#.*$/, '').trim();
      if (line.startsWith('orchestrator ')) out.push(line);
    }
  }
  return out;
}

const isSynopsis = (line: string) => /[[\]|]|\b[A-Z]{2,}\b/.test(line);

describe('README', () => {
  const lines = commandLines();

  it('shows commands', () => {
    expect(lines.length).toBeGreaterThan(10);
  });

  for (const line of lines) {
    it(line, async () => {
      const words = line.split(/\s+/);
      const names = words[1]!.split('|');
      for (const name of names) {
        const entry = COMMANDS[name];
        expect(entry, `unknown command ${name}`).toBeDefined();
        const spec = (await entry!.load()).spec;
        const known = new Set(spec.options.flatMap((o) => [`--${o.name}`, ...(o.short ? [`-${o.short}`] : [])]));
        for (const w of words.slice(2)) {
          for (const flag of w.replace(/^\[/, '').split('|').map((f) => f.replace(/[[\]]/g, '').replace(/=.*$/, ''))) {
            if (/^--?[a-zA-Z]/.test(flag)) expect(known.has(flag) || flag === '--help', `${name}: unknown option ${flag}`).toBe(true);
          }
        }
      }
      if (!isSynopsis(line)) expect(ciScript.includes(line), `not run by scripts/ci-quickstart.sh: ${line}`).toBe(true);
    });
  }

  it('starts with the two commands, and CI runs both', () => {
    const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].slice(0, 2).map((m) => m[1]!.trim());
    expect(blocks).toEqual(['bash scripts/quickstart.sh', 'npm test']);
    expect(ciScript).toContain('bash scripts/quickstart.sh');
    expect(ciRun).toContain('npm test');
    expect(ciRun).toContain('bash scripts/ci-quickstart.sh');
  });
});
