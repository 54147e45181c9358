import { EXIT, type Command } from './command.js';
import { PROJECT_OPTIONS, requireProjectAndRecipes } from './project-options.js';

export const command: Command = {
  spec: {
    name: 'validate',
    summary: 'check the manifest and recipes',
    usage: '[-f FILE] [-C DIR]',
    description: 'Reports every problem of orchestrator.yaml and of its recipes with file:line:col; exits 2 when there is one.',
    options: PROJECT_OPTIONS,
    positionals: { min: 0, max: 0 },
  },
  async run(ctx, args) {
    const loaded = await requireProjectAndRecipes(ctx, args);
    if (loaded === undefined) return EXIT.usage;
    const n = loaded.project.targets.length;
    ctx.stdout.write(`ok: ${n} target${n === 1 ? '' : 's'}\n`);
    return EXIT.ok;
  },
};
