import type { SourceLocation } from '../core/diagnostic.js';
import type { Project, Target } from '../manifest/project.js';
import { findCycles } from '../core/find-cycles.js';

/** `from` is built from `to` (`from: target:TO` in target FROM), and where that was written. */
export interface DependencyEdge {
  readonly from: string;
  readonly to: string;
  readonly location?: SourceLocation;
}

/**
 * The targets of a project and what each is built from. Nodes keep the manifest's order, which is
 * also the tie-break of the build order, so plans and graphs are stable.
 */
export class TargetGraph {
  readonly #targets: ReadonlyMap<string, Target>;
  readonly #deps: ReadonlyMap<string, readonly string[]>;
  readonly #dependents: ReadonlyMap<string, readonly string[]>;
  readonly #order: ReadonlyMap<string, number>;

  private constructor(targets: readonly Target[]) {
    this.#targets = new Map(targets.map((t) => [t.name, t]));
    this.#order = new Map(targets.map((t, i) => [t.name, i]));
    this.#deps = new Map(targets.map((t) => [t.name, t.dependencies.filter((d) => this.#targets.has(d))]));
    const dependents = new Map<string, string[]>(targets.map((t) => [t.name, []]));
    for (const t of targets) for (const d of this.#deps.get(t.name) ?? []) dependents.get(d)!.push(t.name);
    this.#dependents = dependents;
  }

  static fromProject(project: Pick<Project, 'targets'>): TargetGraph {
    return new TargetGraph(project.targets);
  }

  /** Target names in manifest order. */
  get nodes(): readonly string[] {
    return [...this.#targets.keys()];
  }

  target(name: string): Target | undefined {
    return this.#targets.get(name);
  }

  /** Every edge, in manifest order of the dependent target. */
  get edges(): readonly DependencyEdge[] {
    return this.nodes.flatMap((n) => (this.#deps.get(n) ?? []).map((to) => this.#edge(n, to)));
  }

  #edge(from: string, to: string): DependencyEdge {
    const location = this.#targets.get(from)?.locations.from;
    return location ? { from, to, location } : { from, to };
  }

  /** What `name` is built from, directly. */
  dependencies(name: string): readonly string[] {
    return this.#deps.get(name) ?? [];
  }

  /** What is built from `name`, directly, in manifest order. */
  dependents(name: string): readonly string[] {
    return this.#dependents.get(name) ?? [];
  }

  /** Each cycle as its edges (a → b, b → a). A validated Project has none. */
  cycles(): DependencyEdge[][] {
    return findCycles(this.nodes, (n) => this.dependencies(n)).map((cycle) =>
      cycle.map((n, i) => this.#edge(n, cycle[(i + 1) % cycle.length]!)),
    );
  }

  /** `names` and everything they are built from, transitively. */
  withDependencies(names: Iterable<string>): Set<string> {
    const out = new Set<string>();
    const visit = (n: string): void => {
      if (out.has(n) || !this.#targets.has(n)) return;
      out.add(n);
      for (const d of this.dependencies(n)) visit(d);
    };
    for (const n of names) visit(n);
    return out;
  }

  /**
   * The targets to build for `names` (default: all), dependencies included, each after what it is
   * built from; among targets that could go next, the one earlier in the manifest goes first.
   * Throws on a cycle: a validated Project has none, so that is a bug.
   */
  buildOrder(names?: Iterable<string>): string[] {
    const wanted = names === undefined ? new Set(this.nodes) : this.withDependencies(names);
    const remaining = new Map([...wanted].map((n) => [n, this.dependencies(n).filter((d) => wanted.has(d)).length]));
    const order: string[] = [];
    while (remaining.size > 0) {
      let next: string | undefined;
      for (const [n, pending] of remaining) {
        if (pending === 0 && (next === undefined || this.#order.get(n)! < this.#order.get(next)!)) next = n;
      }
      if (next === undefined) throw new Error(`dependency cycle among ${[...remaining.keys()].join(', ')}`);
      remaining.delete(next);
      order.push(next);
      for (const m of this.dependents(next)) {
        const p = remaining.get(m);
        if (p !== undefined) remaining.set(m, p - 1);
      }
    }
    return order;
  }
}
