import { mkdirSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runUp } from '../../src/executor/run-up.js';
import type { UpEvent } from '../../src/executor/up-events.js';
import { TargetGraph } from '../../src/graph/target-graph.js';
import { loadProject } from '../../src/manifest/load-project.js';
import { loadRecipes } from '../../src/manifest/load-recipes.js';
import { Store } from '../../src/store/store.js';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

/**
 * The boundary around each target (issue 14), driven through the real engine: an exception that is
 * a bug (injected: the store's temp folders throw a TypeError) is still only its target's failure,
 * said as a bug, and the run ends with run-done.
 */
let rig: Rig;
beforeEach(async () => {
  rig = await Rig.create('orchestrator-boundary-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
});
afterEach(() => rig.cleanup());

describe('a target that throws', () => {
  it('fails that target as a bug; the run goes on under --keep-going and ends with run-done', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  a:\n    from: ./rootfs\n    recipe: a.def\n    format: squashfs\n  b:\n    from: ./rootfs\n    format: squashfs\n',
      'a.def': '%post\n    echo a > /a\n',
    });
    const { project } = await loadProject({ cwd: rig.dir });
    const recipes = loadRecipes(project!, { cwd: rig.dir });
    const real = await Store.open({ dir: rig.path('cache') });
    const bug = (): never => {
      throw new TypeError('injected bug');
    };
    // The fault: a %post step needs a temp folder of the store, and asking for one throws.
    const store = new Proxy(real, {
      get(t, p) {
        if (p === 'makeTempDir' || p === 'tempPath') return bug;
        const v = Reflect.get(t, p, t) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    const events: UpEvent[] = [];
    const r = await runUp({
      project: project!,
      recipes: recipes.byTarget,
      order: TargetGraph.fromProject(project!).buildOrder(),
      requested: new Set(['a', 'b']),
      jobs: 1,
      keepGoing: true,
      force: false,
      noCache: false,
      noTest: false,
      pull: false,
      dryRun: false,
      store,
      client: () => Promise.reject(new Error('no registry here')),
      toolVersion: 'test',
      onEvent: (e) => events.push(e),
      signal: new AbortController().signal,
    });
    expect(r.ok).toBe(true);
    const failed = events.filter((e): e is Extract<UpEvent, { type: 'target-failed' }> => e.type === 'target-failed');
    expect(failed.map((e) => e.target)).toEqual(['a', 'b']);
    expect(failed[0]!.error.reason).toBe('unexpected');
    expect(failed[0]!.error.message).toMatch(/^a \([^)]+\): internal error \(a bug; please report it\):\nTypeError: injected bug\n/);
    expect(events.at(-1)).toMatchObject({ type: 'run-done', summary: { built: 0, failed: 2, skipped: 0 } });
  });
});
