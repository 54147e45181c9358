import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands.js';
import { REPO_ROOT } from '../helpers/cli.js';

/**
 * The README and docs/ARCHITECTURE.md show nothing that does not run: every concrete
 * `orchestrator ...` command in their code blocks is run by .ci/run (scripts/ci-quickstart.sh),
 * every synopsis names real commands and real options, and every other command of a ```sh block
 * names an npm script, a script file, a folder or a test file that exists (and that `npm test` runs).
 */
const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const architecture = readFileSync(join(REPO_ROOT, 'docs/ARCHITECTURE.md'), 'utf8');
const ciScript = readFileSync(join(REPO_ROOT, 'scripts/ci-quickstart.sh'), 'utf8');
const ciRun = readFileSync(join(REPO_ROOT, '.ci/run'), 'utf8');
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin?: Record<string, string> };
const scripts = pkg.scripts;

const withoutComment = (raw: string): string => raw.replace(/^\$ /, '').replace(/\s+#.*$/, '').trim();

/** The `orchestrator ...` lines of every code block of a document. */
function commandLines(doc: string): string[] {
  const out: string[] = [];
  for (const block of doc.matchAll(/```(?:sh)?\n([\s\S]*?)```/g)) {
    for (const raw of block[1]!.split('\n')) {
      const line = withoutComment(raw);
      if (line.startsWith('orchestrator ')) out.push(line);
    }
  }
  return out;
}

/** The other lines of a document's ```sh blocks: `npm ...`, `npx vitest run ...`, `bash FILE`, `cd DIR`. */
function shellLines(doc: string): string[] {
  const out: string[] = [];
  for (const block of doc.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const raw of block[1]!.split('\n')) {
      const line = withoutComment(raw);
      if (line !== '' && !line.startsWith('orchestrator ')) out.push(line);
    }
  }
  return out;
}

/** Why a shell line of a document would not run, or undefined when it would. */
function shellProblem(line: string): string | undefined {
  const [cmd, ...args] = line.split(/\s+/);
  const exists = (p: string) => existsSync(join(REPO_ROOT, p));
  switch (cmd) {
    case 'npm': {
      // npm's own commands that act on this package: its bin entries must exist.
      if (args[0] === 'link' || args[0] === 'ci') return Object.values(pkg.bin ?? {}).every((b) => exists(b)) ? undefined : `a bin of package.json is missing`;
      const script = args[0] === 'run' ? args[1] : args[0];
      return script !== undefined && scripts[script] !== undefined ? undefined : `no npm script '${script ?? ''}' in package.json`;
    }
    case 'npx': {
      if (args[0] !== 'vitest' || args[1] !== 'run') return `only 'npx vitest run' is known: ${line}`;
      const files = args.slice(2).filter((a) => !a.startsWith('-'));
      const missing = files.filter((f) => !exists(f) || !/^test\/.*\.test\.ts$/.test(f));
      return files.length > 0 && missing.length === 0 ? undefined : `not a test file that npm test runs: ${missing.join(' ') || '(none named)'}`;
    }
    case 'bash':
      return args[0] !== undefined && exists(args[0]) ? undefined : `no script ${args[0] ?? ''}`;
    case 'cd':
      return args[0] !== undefined && exists(args[0]) ? undefined : `no folder ${args[0] ?? ''}`;
    default:
      return `a command the documentation tests do not know: ${line}`;
  }
}

const isSynopsis = (line: string) => /[[\]|]|\b[A-Z]{2,}\b/.test(line);

async function checkCommand(line: string): Promise<void> {
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
}

describe('README', () => {
  const lines = commandLines(readme);

  it('shows commands', () => {
    expect(lines.length).toBeGreaterThan(10);
  });

  for (const line of lines) it(line, () => checkCommand(line));

  for (const line of shellLines(readme)) {
    it(line, () => {
      expect(shellProblem(line)).toBeUndefined();
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

describe('docs/ARCHITECTURE.md', () => {
  const lines = commandLines(architecture);
  const shell = shellLines(architecture);

  it('shows commands', () => {
    expect(lines.length + shell.length).toBeGreaterThan(0);
  });

  for (const line of lines) it(line, () => checkCommand(line));

  for (const line of shell) {
    it(line, () => {
      expect(shellProblem(line)).toBeUndefined();
    });
  }
});

describe('the check of shell lines', () => {
  it('says why a line would not run', () => {
    expect(shellProblem('npm run nope')).toBe("no npm script 'nope' in package.json");
    expect(shellProblem('npm link')).toBeUndefined();
    expect(shellProblem('npx vitest run test/unit/gone.test.ts')).toBe('not a test file that npm test runs: test/unit/gone.test.ts');
    expect(shellProblem('bash scripts/gone.sh')).toBe('no script scripts/gone.sh');
    expect(shellProblem('cd examples/gone')).toBe('no folder examples/gone');
    expect(shellProblem('make everything')).toBe('a command the documentation tests do not know: make everything');
    expect(shellProblem('npm test')).toBeUndefined();
  });
});
