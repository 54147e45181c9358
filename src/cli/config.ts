import { isAbsolute, relative, sep } from 'node:path';
import { stringify } from 'yaml';
import type { Project, Target } from '../manifest/project.js';
import { boolOption } from './args.js';
import { EXIT, type Command } from './command.js';
import { PROJECT_OPTIONS, requireProject } from './project-options.js';

/** A path as the manifest would write it: relative to the project folder when it is inside it. */
function written(project: Project, abs: string): string {
  const r = relative(project.dir, abs);
  return r === '' ? '.' : r.startsWith('..') || isAbsolute(r) ? abs : r.split(sep).join('/');
}

function targetEntry(project: Project, t: Target): Record<string, unknown> {
  // Only the args the target does not share with the top level: merged over those, the same args.
  const args = Object.fromEntries(Object.entries(t.args).filter(([k, v]) => project.args[k] !== v));
  return {
    ...(t.from ? { from: t.from.kind === 'target' ? `target:${t.from.target}` : t.from.text } : {}),
    ...(t.recipe !== undefined ? { recipe: written(project, t.recipe) } : {}),
    format: t.format,
    output: written(project, t.output) + (t.format === 'sandbox' ? '/' : ''),
    ...(t.size !== undefined ? { size: t.size } : {}),
    ...(Object.keys(args).length > 0 ? { args } : {}),
    ...(t.inputs.length > 0 ? { inputs: [...t.inputs] } : {}),
    ...(t.test ? {} : { test: false }),
  };
}

/**
 * The manifest with everything expanded (docs/ARCHITECTURE.md, Manifest and recipes): one plain
 * target per matrix variant, inherited keys in place, variables and `--set` values applied, a
 * matrix's base name as a group. Valid as a manifest of its own that gives the same targets.
 */
export function expandedManifest(project: Project): Record<string, unknown> {
  return {
    version: 1,
    ...(project.cacheDir !== undefined ? { cache: { dir: project.cacheDir } } : {}),
    ...(project.outputsOutside ? { outputs: { outside: [...project.outputsOutside] } } : {}),
    ...(Object.keys(project.args).length > 0 ? { args: { ...project.args } } : {}),
    targets: Object.fromEntries(project.targets.map((t) => [t.name, targetEntry(project, t)])),
    ...(project.groups.length > 0 ? { groups: Object.fromEntries(project.groups.map((g) => [g.name, [...g.members]])) } : {}),
  };
}

export const command: Command = {
  spec: {
    name: 'config',
    summary: 'print the manifest with matrix, inherits and variables expanded',
    usage: '[--json] [--set T.KEY=VALUE] [-f FILE] [-C DIR]',
    description:
      "Prints orchestrator.yaml as the build sees it: one target per matrix variant, inherited keys in place, ${NAME}, args_file and --set applied, a matrix's base name as a group. The output is a manifest of its own (YAML, or JSON with --json) that gives the same targets.",
    options: [{ name: 'json', type: 'boolean', description: 'print JSON instead of YAML' }, ...PROJECT_OPTIONS],
    positionals: { min: 0, max: 0 },
  },
  async run(ctx, args) {
    const project = await requireProject(ctx, args);
    if (project === undefined) return EXIT.usage;
    const data = expandedManifest(project);
    if (boolOption(args, 'json')) {
      ctx.stdout.write(JSON.stringify(data, null, 2) + '\n');
      return EXIT.ok;
    }
    ctx.stdout.write(stringify(data, { version: '1.2', lineWidth: 0 }));
    return EXIT.ok;
  },
};
