import { rm } from 'node:fs/promises';
import { relative } from 'node:path';
import { expandSelection } from '../graph/expand-selection.js';
import { ProjectState } from '../state/project-state.js';
import { acquireProjectLock } from '../state/project-lock.js';
import { StateDir } from '../state/state-dir.js';
import { outputInUse, writableSessionHolder } from '../runtime/writable-lock.js';
import { EXIT, printDiagnostics, type Command } from './command.js';
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
      printDiagnostics(ctx, names.error);
      return EXIT.usage;
    }
    const lock = await acquireProjectLock(new StateDir(project.dir));
    if (!lock.ok) {
      printDiagnostics(ctx, [lock.error]);
      return EXIT.failed;
    }
    try {
      // An image open in a writable session is never removed from under it; nothing is removed then.
      const inUse = names.value.flatMap((name) => {
        const target = project.targets.find((t) => t.name === name)!;
        const holder = writableSessionHolder(target.output);
        const shown = `${relative(project.dir, target.output) || target.output}${target.format === 'sandbox' ? '/' : ''}`;
        return holder ? [outputInUse(target.format === 'sandbox' ? 'sandbox' : 'image', shown, holder, target.locations.output ?? target.locations.name)] : [];
      });
      if (inUse.length > 0) {
        printDiagnostics(ctx, inUse);
        return EXIT.failed;
      }
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
