import { TargetGraph } from '../graph/target-graph.js';
import type { Project } from '../manifest/project.js';
import { stringOption } from './args.js';
import { EXIT, type Command } from './command.js';
import { PROJECT_OPTIONS, requireProject } from './project-options.js';

const quote = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

function label(project: Project, name: string): string {
  const t = project.targets.find((x) => x.name === name)!;
  return `${name} (${t.format})`;
}

/** Registry and file sources as nodes of their own, so the graph shows where each chain starts. */
function externalSource(project: Project, name: string): string | undefined {
  const from = project.targets.find((x) => x.name === name)?.from;
  return from && from.kind !== 'target' ? from.text : undefined;
}

export function graphText(project: Project, graph: TargetGraph): string {
  return graph
    .buildOrder()
    .map((n) => {
      const deps = graph.dependencies(n);
      const src = externalSource(project, n);
      const from = deps.length > 0 ? ` <- ${deps.join(', ')}` : src !== undefined ? ` <- ${src}` : '';
      return `${label(project, n)}${from}\n`;
    })
    .join('');
}

export function graphDot(project: Project, graph: TargetGraph): string {
  const lines = ['digraph orchestrator {', '  rankdir=LR;', '  node [shape=box];'];
  const sources = new Set<string>();
  for (const n of graph.nodes) {
    const t = graph.target(n)!;
    lines.push(`  ${quote(n)} [label=${quote(`${n}\n${t.format}`)}];`);
    const src = externalSource(project, n);
    if (src !== undefined && !sources.has(src)) {
      sources.add(src);
      lines.push(`  ${quote(src)} [shape=ellipse];`);
    }
  }
  for (const n of graph.nodes) {
    const src = externalSource(project, n);
    if (src !== undefined) lines.push(`  ${quote(src)} -> ${quote(n)};`);
  }
  for (const e of graph.edges) lines.push(`  ${quote(e.to)} -> ${quote(e.from)};`);
  lines.push('}');
  return lines.join('\n') + '\n';
}

export function graphMermaid(project: Project, graph: TargetGraph): string {
  const ids = new Map(graph.nodes.map((n, i) => [n, `t${i}`]));
  const esc = (s: string): string => s.replace(/"/g, '#quot;');
  const lines = ['graph LR'];
  const sources = new Map<string, string>();
  for (const n of graph.nodes) {
    lines.push(`  ${ids.get(n)}["${esc(`${n} (${graph.target(n)!.format})`)}"]`);
    const src = externalSource(project, n);
    if (src !== undefined && !sources.has(src)) {
      sources.set(src, `s${sources.size}`);
      lines.push(`  ${sources.get(src)}(["${esc(src)}"])`);
    }
  }
  for (const n of graph.nodes) {
    const src = externalSource(project, n);
    if (src !== undefined) lines.push(`  ${sources.get(src)} --> ${ids.get(n)}`);
  }
  for (const e of graph.edges) lines.push(`  ${ids.get(e.to)} --> ${ids.get(e.from)}`);
  return lines.join('\n') + '\n';
}

export const command: Command = {
  spec: {
    name: 'graph',
    summary: 'print the dependency graph of the targets',
    usage: '[--format text|dot|mermaid] [-f FILE] [-C DIR]',
    description: "Arrows point from what a target is built from to the target. 'dot' is Graphviz input: orchestrator graph --format dot | dot -Tsvg > graph.svg",
    options: [
      { name: 'format', type: 'string', value: 'FORMAT', choices: ['text', 'dot', 'mermaid'], description: 'output format (default text)' },
      ...PROJECT_OPTIONS,
    ],
    positionals: { min: 0, max: 0 },
  },
  async run(ctx, args) {
    const project = await requireProject(ctx, args);
    if (project === undefined) return EXIT.usage;
    const graph = TargetGraph.fromProject(project);
    const format = stringOption(args, 'format') ?? 'text';
    const text = format === 'dot' ? graphDot(project, graph) : format === 'mermaid' ? graphMermaid(project, graph) : graphText(project, graph);
    ctx.stdout.write(text);
    return EXIT.ok;
  },
};
