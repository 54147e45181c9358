import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { relative } from 'node:path';
import { sweepDeadTemps } from '../executor/stale-temps.js';
import { pendingOutput } from '../executor/target-status.js';
import { expandSelection } from '../graph/expand-selection.js';
import type { Target } from '../manifest/project.js';
import { ProjectState } from '../state/project-state.js';
import { acquireProjectLock } from '../state/project-lock.js';
import { StateDir } from '../state/state-dir.js';
import { outputInUse, writableSessionHolder } from '../runtime/writable-lock.js';
import { EXIT, type Command, failWith } from './command.js';
import { PROJECT_OPTIONS, requireProject } from './project-options.js';
import { FAKEROOT_OPTIONS } from './build-namespace.js';

export const command: Command = {
  spec: {
    name: 'clean',
    summary: 'remove outputs and their recorded state',
    usage: '[TARGET|GROUP ...] [-f FILE] [-C DIR]',
    description: [
      'Removes the outputs of the named targets (default: every target) and what was recorded about them; the cache keeps their steps, so the next up is quick.',
      'Only what orchestrator recorded writing is removed: a path it did not write is left as it is, and said so.',
    ].join('\n'),
    options: [...PROJECT_OPTIONS, ...FAKEROOT_OPTIONS],
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
      // An image open in a writable session is never removed from under it; nothing is removed then.
      const inUse = names.value.flatMap((name) => {
        const target = project.targets.find((t) => t.name === name)!;
        const holder = writableSessionHolder(target.output);
        const shown = `${relative(project.dir, target.output) || target.output}${target.format === 'sandbox' ? '/' : ''}`;
        return holder ? [outputInUse(target.format === 'sandbox' ? 'sandbox' : 'image', shown, holder, target.locations.output ?? target.locations.name)] : [];
      });
      if (inUse.length > 0) return failWith(ctx, inUse);
      const state = await ProjectState.load(project.dir);
      const shown = (path: string, t: Target): string => `${relative(project.dir, path).startsWith('..') ? path : relative(project.dir, path) || path}${t.format === 'sandbox' ? '/' : ''}`;
      for (const name of names.value) {
        const target = project.targets.find((t) => t.name === name)!;
        // Ours: the output the record names, or the one a build stopped before its record wrote.
        const ours = new Set([state.get(name)?.output, pendingOutput(state, name)].filter((p): p is string => p !== undefined));
        for (const path of ours) {
          await sweepDeadTemps(path);
          if (!existsSync(path)) continue;
          await rm(path, { recursive: true, force: true });
          ctx.stdout.write(`removed ${shown(path, target)}\n`);
        }
        if (!ours.has(target.output)) {
          await sweepDeadTemps(target.output);
          if (existsSync(target.output)) ctx.stdout.write(`left ${shown(target.output, target)} alone: orchestrator has no record of writing it\n`);
        }
        await state.remove(name);
        await rm(state.paths.pending(name), { force: true });
        await rm(state.paths.journal(name), { force: true });
      }
      return EXIT.ok;
    } finally {
      await lock.value.release();
    }
  },
};
