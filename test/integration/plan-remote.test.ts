/**
 * `plan --remote` against the real docker-registry, two caches as two machines: machine A pushes
 * its steps; machine B's plan marks the steps A has "from remote cache" and the one it lacks as
 * one that would run, without pulling or running anything; without --remote the plan contacts no
 * registry (a registry that is down changes nothing), and `up` then takes those very steps.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Rig } from '../helpers/rig.js';

let registry: TestRegistry;
let machines: Rig[] = [];

const MANIFEST = (remote: string): string => `version: 1\ncache:\n  remote: ${remote}\ntargets:\n  img:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n`;
const recipe = (runscript: string): string => `%post\n    echo made-by-post > /post.txt\n%runscript\n    ${runscript}\n`;

async function machine(name: string, remote: string, runscript: string, rootfsFrom?: Rig): Promise<{ rig: Rig; env: NodeJS.ProcessEnv }> {
  const rig = await Rig.create(`orchestrator-plan-remote-${name}-`);
  machines.push(rig);
  if (rootfsFrom) execFileSync('cp', ['-a', rootfsFrom.path('rootfs'), rig.path('rootfs')]);
  else {
    mkdirSync(rig.path('rootfs'));
    makeBusyboxTree(rig.path('rootfs'));
  }
  rig.write({ 'orchestrator.yaml': MANIFEST(remote), 'app.def': recipe(runscript) });
  const env: NodeJS.ProcessEnv = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache'), DOCKER_CONFIG: rig.path('docker'), NO_COLOR: '1' };
  delete env['CI'];
  return { rig, env };
}

const snapshots = (rig: Rig): string[] => (existsSync(rig.path('cache/snapshots')) ? readdirSync(rig.path('cache/snapshots')) : []);

beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
});
afterEach(() => {
  for (const m of machines) m.cleanup();
  machines = [];
});

describe('plan --remote', () => {
  it("marks the steps a cache-from repository has 'from remote cache', pulls and runs nothing, and up takes them", async () => {
    const repo = `${registry.host}/team/plan-cache`;
    const a = await machine('a', repo, 'echo hello');
    const pushed = await a.rig.spawn(['up', '--progress', 'plain', '--cache-to', repo], { env: a.env });
    expect(pushed.code).toBe(0);

    // B: an empty cache, an edited %runscript: A's %post is there, the metadata step is not.
    const b = await machine('b', repo, 'echo edited', a.rig);
    const offline = await b.rig.spawn(['plan'], { env: b.env });
    expect(offline.code).toBe(0);
    expect(offline.stdout).not.toContain('step:');
    expect(offline.stdout).toContain('1 target in build order, 1 to build\n');

    const plan = await b.rig.spawn(['plan', '--remote'], { env: b.env });
    expect(plan.stderr).toBe('');
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain(`     step:    %post: from remote cache ${repo}\n     step:    metadata: would run\n`);
    expect(plan.stdout).toContain('1 target in build order, 1 to build, 1 step from remote cache\n');
    expect(existsSync(b.rig.path('build/img.simg'))).toBe(false);

    const json = await b.rig.spawn(['plan', '--json', '--cache-from', repo], { env: b.env });
    const target = (JSON.parse(json.stdout) as { targets: Array<{ steps: Array<{ step: string; key: string; from: string; where?: string }> }> }).targets[0]!;
    expect(target.steps.map((s) => [s.step, s.from, s.where ?? null])).toEqual([
      ['%post', 'remote', repo],
      ['metadata', 'build', null],
    ]);

    // Nothing was pulled into B's cache, and nothing ran: no snapshot of either step.
    const hexes = target.steps.map((s) => s.key.replace(/^sha256:/, ''));
    expect(hexes.every((h) => /^[0-9a-f]{64}$/.test(h))).toBe(true);
    expect(snapshots(b.rig).filter((s) => hexes.includes(s))).toEqual([]);

    // up takes exactly the step the plan said, with the key the plan gave.
    const up = await b.rig.spawn(['up', '--progress', 'json'], { env: b.env });
    expect(up.code).toBe(0);
    const events = up.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; key?: string; remote?: { bytes: number } });
    const hit = events.find((e) => e.type === 'step-cached' && e.remote)!;
    expect(hit.key).toBe(target.steps[0]!.key);
    expect(hit.remote!.bytes).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === 'step-started').map((e) => e.key)).toEqual([target.steps[1]!.key]);
    expect(snapshots(b.rig).filter((s) => hexes.includes(s)).sort()).toEqual([...hexes].sort());
  }, 240_000);

  it('says the repository is unreachable once and plans on; without --remote a down registry is never asked', async () => {
    const down = `127.0.0.1:${await freePort()}/team/cache`;
    const b = await machine('down', down, 'echo hello');
    const offline = await b.rig.spawn(['plan'], { env: b.env });
    expect(offline.code).toBe(0);
    expect(offline.stderr).toBe('');
    const plan = await b.rig.spawn(['plan', '--remote'], { env: b.env });
    expect(plan.code).toBe(0);
    expect(plan.stderr.split('\n').filter((l) => l.startsWith('warning:'))).toHaveLength(1);
    expect(plan.stderr).toMatch(new RegExp(`^warning: remote cache ${down.replace(/\./g, '\\.')}: `, 'm'));
    expect(plan.stdout).toContain('     step:    %post: would run\n     step:    metadata: would run\n');
    expect(plan.stdout).toContain(', 0 steps from remote cache\n');
  }, 240_000);
});
