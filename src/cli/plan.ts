import { relative, sep } from 'node:path';
import { expandSelection } from '../graph/expand-selection.js';
import { TargetGraph } from '../graph/target-graph.js';
import type { Project, Target } from '../manifest/project.js';
import { boolOption } from './args.js';
import { EXIT, printDiagnostics, type Command } from './command.js';
import { PROJECT_OPTIONS, requireProject } from './project-options.js';

/** A path as the plan prints it: relative to the project folder; sandbox folders end in '/'. */
function shown(project: Project, abs: string, folder = false): string {
  const r = relative(project.dir, abs).split(sep).join('/');
  const p = r === '' ? '.' : r.startsWith('../') ? abs : r;
  return folder ? `${p}/` : p;
}

/** `1GiB`, `256MiB`, or bytes when no binary unit divides the size. */
function showSize(bytes: number): string {
  for (const [unit, n] of [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes} bytes`;
}

function planEntry(project: Project, t: Target) {
  return {
    name: t.name,
    source: t.from ? { kind: t.from.kind, text: t.from.text } : null,
    recipe: t.recipe ?? null,
    format: t.format,
    output: t.output,
    ...(t.size !== undefined ? { size: t.size } : {}),
    dependencies: [...t.dependencies],
    display: {
      recipe: t.recipe ? shown(project, t.recipe) : null,
      output: shown(project, t.output, t.format === 'sandbox'),
    },
  };
}

export const command: Command = {
  spec: {
    name: 'plan',
    summary: 'show the targets to build, in build order',
    usage: '[TARGET|GROUP ...] [--json] [-f FILE] [-C DIR]',
    description:
      "Lists the selected targets (default: the group 'default', else all) and what they are built from, in build order. Staleness and the reasons for rebuilds come with the build engine.",
    options: [{ name: 'json', type: 'boolean', description: 'print the plan as JSON' }, ...PROJECT_OPTIONS],
    positionals: { min: 0 },
  },
  async run(ctx, args) {
    const project = await requireProject(ctx, args);
    if (project === undefined) return EXIT.usage;
    const selection = expandSelection(project, args.positionals);
    if (!selection.ok) {
      printDiagnostics(ctx, selection.error);
      return EXIT.usage;
    }
    const graph = TargetGraph.fromProject(project);
    const order = graph.buildOrder(selection.value).map((n) => graph.target(n)!);
    if (boolOption(args, 'json')) {
      const json = {
        manifest: project.file,
        targets: order.map((t) => {
          const { display: _display, ...rest } = planEntry(project, t);
          return rest;
        }),
      };
      ctx.stdout.write(JSON.stringify(json, null, 2) + '\n');
      return EXIT.ok;
    }
    const lines: string[] = [];
    order.forEach((t, i) => {
      const e = planEntry(project, t);
      lines.push(`${i + 1}. ${t.name}`);
      lines.push(`     source:  ${t.from?.text ?? '(the recipe\'s Bootstrap header)'}`);
      if (e.display.recipe) lines.push(`     recipe:  ${e.display.recipe}`);
      lines.push(`     format:  ${t.format}${t.size !== undefined ? `, ${showSize(t.size)}` : ''}`);
      lines.push(`     output:  ${e.display.output}`);
      if (t.dependencies.length > 0) lines.push(`     needs:   ${t.dependencies.join(', ')}`);
    });
    lines.push(`${order.length} target${order.length === 1 ? '' : 's'} in build order`);
    ctx.stdout.write(lines.join('\n') + '\n');
    return EXIT.ok;
  },
};
