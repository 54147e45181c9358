import { rm } from 'node:fs/promises';
import { relative } from 'node:path';
import { expandSelection } from '../graph/expand-selection.js';
import { ProjectState } from '../state/project-state.js';
import { acquireProjectLock } from '../state/project-lock.js';
import { StateDir } from '../state/state-dir.js';
import { EXIT, type Command, failWith } from './command.js';
import { PROJECT_OPTIONS, requireProject } from './project-options.js';

export const command: Command = {
  spec: {
    name: 'clean',
    summary: 'remove outputs and their recorded state',
    usage: '[TARGET|GROUP ...] [-f FILE] [-C DIR]',
    description: 'Removes the outputs of the named targets (default: every target) and what was recorded about them; the cache keeps their steps, so the next up is quick.',
    options: [...PROJECT_OPTIONS],
    positionals: { min: 0 },
  },
  async run(ctx, args) {
    const project = await requireProject(ctx, args);
    if (project === undefined) return EXIT.usage;
    const names = args.positionals.length === 0 ? { ok: true as const, value: project.targets.map((t) => t.name) } : expandSelection(project, args.positionals);
    if (!names.ok) {
      return failWith(ctx, names.error);
    }
    const lock = await acquireProjectLock(new StateDir(project.dir));
    if (!lock.ok) {
      return failWith(ctx, [lock.error]);
    }
    try {
      const state = await ProjectState.load(project.dir);
      for (const name of names.value) {
        const target = project.targets.find((t) => t.name === name)!;
        await rm(target.output, { recursive: true, force: true });
        await state.remove(name);
        ctx.stdout.write(`removed ${relative(project.dir, target.output) || target.output}${target.format === 'sandbox' ? '/' : ''}\n`);
      }
      return EXIT.ok;
    } finally {
      await lock.value.release();
    }
  },
};
