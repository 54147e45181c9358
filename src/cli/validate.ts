import { loadRecipes } from '../manifest/load-recipes.js';
import { countSummary } from '../report/diagnostics.js';
import { EXIT, printDiagnostics, type Command } from './command.js';
import { loadProjectFromArgs, PROJECT_OPTIONS } from './project-options.js';

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
    const { project, diagnostics } = await loadProjectFromArgs(ctx, args);
    printDiagnostics(ctx, diagnostics);
    if (project === undefined) {
      ctx.stderr.write(`${countSummary(diagnostics)}\n`);
      return EXIT.usage;
    }
    const recipes = loadRecipes(project, { cwd: ctx.cwd });
    printDiagnostics(ctx, recipes.diagnostics);
    if (recipes.diagnostics.some((d) => d.severity === 'error')) {
      ctx.stderr.write(`${countSummary(recipes.diagnostics)}\n`);
      return EXIT.usage;
    }
    const n = project.targets.length;
    ctx.stdout.write(`ok: ${n} target${n === 1 ? '' : 's'}\n`);
    return EXIT.ok;
  },
};
