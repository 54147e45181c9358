import { describe, expect, it } from 'vitest';
import { expandSelection } from '../../src/graph/expand-selection.js';
import { findCycles } from '../../src/core/find-cycles.js';
import { TargetGraph } from '../../src/graph/target-graph.js';
import type { Group, Target } from '../../src/manifest/project.js';

const loc = (line: number) => ({ file: 'orchestrator.yaml', line, column: 11 });

function target(name: string, dep?: string, line = 1): Target {
  return {
    name,
    ...(dep !== undefined ? { from: { kind: 'target' as const, text: `target:${dep}`, target: dep } } : {}),
    format: 'sandbox',
    output: `/p/build/${name}`,
    outputGiven: false,
    args: {},
    inputs: [],
    test: true,
    dependencies: dep !== undefined ? [dep] : [],
    locations: { name: loc(line), ...(dep !== undefined ? { from: loc(line + 1) } : {}), inputs: [], args: {} },
  };
}

const group = (name: string, members: string[]): Group => ({ name, members, locations: { name: loc(1), members: [] } });

describe('TargetGraph', () => {
  // Written so that file order and dependency order disagree.
  const targets = [target('app', 'base', 1), target('tools'), target('base'), target('cli', 'app', 7), target('docs')];
  const graph = TargetGraph.fromProject({ targets });

  it('orders dependencies first and keeps file order among independent targets', () => {
    expect(graph.buildOrder()).toEqual(['tools', 'base', 'app', 'cli', 'docs']);
  });

  it('builds a selection with everything it is built from, and nothing else', () => {
    expect(graph.buildOrder(['cli'])).toEqual(['base', 'app', 'cli']);
    expect(graph.buildOrder(['docs', 'app'])).toEqual(['base', 'app', 'docs']);
  });

  it('knows dependencies, dependents and edges', () => {
    expect(graph.dependencies('cli')).toEqual(['app']);
    expect(graph.dependents('base')).toEqual(['app']);
    expect(graph.edges).toEqual([
      { from: 'app', to: 'base', location: loc(2) },
      { from: 'cli', to: 'app', location: loc(8) },
    ]);
    expect(graph.cycles()).toEqual([]);
  });

  it('returns a cycle as its edges, starting at the earliest target', () => {
    const g = TargetGraph.fromProject({ targets: [target('x'), target('a', 'c', 10), target('b', 'a', 20), target('c', 'b', 30)] });
    expect(g.cycles()).toEqual([
      [
        { from: 'a', to: 'c', location: loc(11) },
        { from: 'c', to: 'b', location: loc(31) },
        { from: 'b', to: 'a', location: loc(21) },
      ],
    ]);
    expect(() => g.buildOrder()).toThrow('dependency cycle among a, b, c');
  });
});

describe('findCycles', () => {
  it('finds self-loops and one cycle per strongly connected component', () => {
    const edges: Record<string, string[]> = { a: ['a'], b: ['c'], c: ['d', 'b'], d: ['b'], e: ['b'] };
    expect(findCycles(['a', 'b', 'c', 'd', 'e'], (n) => edges[n] ?? [])).toEqual([['a'], ['b', 'c']]);
  });

  it('ignores edges to unknown nodes', () => {
    expect(findCycles(['a'], () => ['zzz'])).toEqual([]);
  });
});

describe('expandSelection', () => {
  const targets = [target('base'), target('api', 'base'), target('worker', 'base')];

  it('takes the default group, else every target', () => {
    expect(expandSelection({ targets, groups: [group('default', ['worker'])] }, [])).toEqual({ ok: true, value: ['worker'] });
    expect(expandSelection({ targets, groups: [] }, [])).toEqual({ ok: true, value: ['base', 'api', 'worker'] });
  });

  it('expands nested groups once, in order of mention', () => {
    const groups = [group('apps', ['api', 'worker']), group('all', ['base', 'apps'])];
    expect(expandSelection({ targets, groups }, ['worker', 'all'])).toEqual({ ok: true, value: ['worker', 'base', 'api'] });
  });

  it('reports every unknown name with a did-you-mean', () => {
    const r = expandSelection({ targets, groups: [group('apps', ['api'])] }, ['wroker', 'aps', 'zzz']);
    expect(r).toEqual({
      ok: false,
      error: [
        { severity: 'error', reason: 'unknown-target', message: "unknown target or group 'wroker'", hint: "did you mean 'worker'?" },
        { severity: 'error', reason: 'unknown-target', message: "unknown target or group 'aps'", hint: "did you mean 'api'?" },
        { severity: 'error', reason: 'unknown-target', message: "unknown target or group 'zzz'", hint: 'known targets: base, api, worker' },
      ],
    });
  });

  it('names the first twelve known targets of a long manifest, and how many more', () => {
    const many = Array.from({ length: 30 }, (_, i) => target(`t${String(i).padStart(2, '0')}`));
    const r = expandSelection({ targets: many, groups: [] }, ['zzzzzz']);
    expect(r.ok ? undefined : r.error[0]?.hint).toBe('known targets: t00, t01, t02, t03, t04, t05, t06, t07, t08, t09, t10, t11, and 18 more (orchestrator plan lists them)');
  });
});
