import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { runCli, runCliInProcess, type CliResult } from './cli.js';

/**
 * A throw-away project folder for tests:
 *
 *     const rig = await Rig.create();
 *     rig.write({ 'orchestrator.yaml': '...', 'recipes/a.def': '...' });
 *     const r = await rig.cli(['validate']);
 *     rig.cleanup();
 *
 * `cli` runs the CLI in this process (fast); `spawn` runs the built bin/orchestrator.js as a child,
 * as a user would (needs `npm run build`). Both run in the rig's folder with NO_COLOR set.
 */
export class Rig {
  private constructor(readonly dir: string) {}

  static async create(prefix = 'orchestrator-rig-'): Promise<Rig> {
    return new Rig(mkdtempSync(join(tmpdir(), prefix)));
  }

  /** Absolute path of a file in the rig. */
  path(rel: string): string {
    return join(this.dir, rel);
  }

  /** Writes files (relative path → content), making folders as needed. */
  write(files: Readonly<Record<string, string>>): this {
    for (const [rel, content] of Object.entries(files)) {
      const abs = this.path(rel);
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(abs, content);
    }
    return this;
  }

  /** Every file in the rig, relative, sorted (to show that a command wrote nothing). */
  files(): string[] {
    const out: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const abs = join(d, e.name);
        if (e.isDirectory()) walk(abs);
        else out.push(relative(this.dir, abs));
      }
    };
    walk(this.dir);
    return out.sort();
  }

  cli(argv: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
    return runCliInProcess(argv, { cwd: options.cwd ?? this.dir, env: { ...process.env, NO_COLOR: '1', ...options.env } });
  }

  spawn(argv: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CliResult> {
    return runCli(argv, { ...options, cwd: options.cwd ?? this.dir });
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
