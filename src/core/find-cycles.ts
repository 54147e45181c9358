/**
 * The cycles of a directed graph, one per strongly connected component that has one, each as the
 * list of its nodes in edge order ([a, b] means a → b → a). Nodes are visited in the given order
 * and every cycle starts at its earliest node, so the result is stable. Edges to nodes not in
 * `nodes` are ignored.
 */
// Long on purpose: Tarjan's algorithm written iteratively (no recursion depth limit on graphs of
// 100k targets) is one loop over an explicit stack.
export function findCycles(nodes: readonly string[], edgesOf: (node: string) => readonly string[]): string[][] {
  const order = new Map(nodes.map((n, i) => [n, i]));
  const succ = (n: string): string[] => edgesOf(n).filter((m) => order.has(m));

  // Tarjan's strongly connected components, iteratively.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  for (const root of nodes) {
    if (index.has(root)) continue;
    const work: { node: string; next: number }[] = [{ node: root, next: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const edges = succ(frame.node);
      if (frame.next < edges.length) {
        const m = edges[frame.next++]!;
        if (!index.has(m)) {
          index.set(m, counter);
          low.set(m, counter++);
          stack.push(m);
          onStack.add(m);
          work.push({ node: m, next: 0 });
        } else if (onStack.has(m)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(m)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let m: string;
        do {
          m = stack.pop()!;
          onStack.delete(m);
          component.push(m);
        } while (m !== frame.node);
        components.push(component);
      }
    }
  }

  const cycles: string[][] = [];
  for (const component of components) {
    const members = new Set(component);
    const start = [...component].sort((a, b) => order.get(a)! - order.get(b)!)[0]!;
    if (component.length === 1 && !succ(start).includes(start)) continue;
    // Shortest way back to `start` inside the component (breadth first, edges in given order).
    const prev = new Map<string, string>();
    const queue = [start];
    let found = false;
    while (queue.length > 0 && !found) {
      const n = queue.shift()!;
      for (const m of succ(n)) {
        if (!members.has(m)) continue;
        if (m === start) {
          prev.set(start, n);
          found = true;
          break;
        }
        if (!prev.has(m)) {
          prev.set(m, n);
          queue.push(m);
        }
      }
    }
    const cycle: string[] = [];
    let n = prev.get(start)!;
    while (n !== start) {
      cycle.unshift(n);
      n = prev.get(n)!;
    }
    cycle.unshift(start);
    cycles.push(cycle);
  }
  return cycles.sort((a, b) => order.get(a[0]!)! - order.get(b[0]!)!);
}
