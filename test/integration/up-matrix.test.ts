import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

/**
 * A matrix of variants built end to end through the built CLI (docs/ARCHITECTURE.md, Manifest and
 * recipes): one busybox recipe whose %post writes its args into the image, a 3×2 matrix less one
 * excluded combination plus one included value, real overlay mounts.
 */
let rig: Rig;
let env: NodeJS.ProcessEnv;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-matrix-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache') };
  delete env['CI'];
});
afterEach(() => rig.cleanup());

const manifest = (extra: string) => `version: 1
templates:
  base:
    from: ./rootfs
    recipe: app.def
    format: sandbox
targets:
  app:
    inherits: [base]
    matrix:
      py: ["3.10", "3.11", "3.12"]
      cuda: [none, "12.4"]
      exclude:
        - py: "3.10"
          cuda: "12.4"
      include:
        - py: "3.11"
          cuda: none
          extra: ${extra}
    name: app-{{ py }}-{{ cuda }}
    output: build/{{ py }}-{{ cuda }}/
`;
const RECIPE = '%arguments\n    extra=none\n%post\n    echo "py={{ py }} cuda={{ cuda }} extra={{ extra }}" > /args\n';
const VARIANTS = ['app-3.10-none', 'app-3.11-none', 'app-3.11-12.4', 'app-3.12-none', 'app-3.12-12.4'];

type Event = { type: string; target?: string; reasons?: Array<{ code: string; message: string }> };
const events = (stdout: string): Event[] => stdout.trim().split('\n').map((l) => JSON.parse(l) as Event);
const built = (stdout: string): string[] => events(stdout).flatMap((e) => (e.type === 'target-done' ? [e.target!] : [])).sort();

describe('a matrix of variants', () => {
  it('builds each variant with its own values, and after an edit of one variant only that one', async () => {
    rig.write({ 'orchestrator.yaml': manifest('a'), 'app.def': RECIPE });
    const first = await rig.spawn(['up', '--progress', 'json', '-j', '2', 'app'], { env });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(built(first.stdout)).toEqual([...VARIANTS].sort());
    expect(readFileSync(rig.path('build/3.10-none/args'), 'utf8')).toBe('py=3.10 cuda=none extra=none\n');
    expect(readFileSync(rig.path('build/3.11-none/args'), 'utf8')).toBe('py=3.11 cuda=none extra=a\n');
    expect(readFileSync(rig.path('build/3.11-12.4/args'), 'utf8')).toBe('py=3.11 cuda=12.4 extra=none\n');
    expect(readFileSync(rig.path('build/3.12-none/args'), 'utf8')).toBe('py=3.12 cuda=none extra=none\n');
    expect(readFileSync(rig.path('build/3.12-12.4/args'), 'utf8')).toBe('py=3.12 cuda=12.4 extra=none\n');

    // One variant's value edited: plan names it, with the reason, and what made it.
    rig.write({ 'orchestrator.yaml': manifest('b') });
    const plan = await rig.spawn(['plan', '--json', 'app'], { env });
    expect(plan.code).toBe(0);
    const targets = (JSON.parse(plan.stdout) as { targets: Array<{ name: string; status: string; reasons: unknown[]; origin: unknown }> }).targets;
    expect(targets.map((t) => [t.name, t.status])).toEqual(VARIANTS.map((v) => [v, v === 'app-3.11-none' ? 'stale' : 'fresh']));
    const stale = targets.find((t) => t.name === 'app-3.11-none')!;
    expect(stale.reasons).toEqual([
      { code: 'section', message: '%post text changed', where: 'app.def:3' },
      { code: 'arg', message: 'build arg extra changed: a → b' },
    ]);
    expect(stale.origin).toEqual({ base: 'app', matrix: { py: '3.11', cuda: 'none', extra: 'b' }, inherits: ['base'] });

    const second = await rig.spawn(['up', '--progress', 'json', 'app'], { env });
    expect(second.code).toBe(0);
    expect(built(second.stdout)).toEqual(['app-3.11-none']);
    expect(readFileSync(rig.path('build/3.11-none/args'), 'utf8')).toBe('py=3.11 cuda=none extra=b\n');
    expect(readFileSync(rig.path('build/3.12-none/args'), 'utf8')).toBe('py=3.12 cuda=none extra=none\n');
  });

  it('keeps the no-op witness to the same --set values, and leaves none when the manifest reads a variable', async () => {
    rig.write({ 'orchestrator.yaml': manifest('a'), 'app.def': RECIPE });
    const summary = async (args: string[], extra: NodeJS.ProcessEnv = {}) => {
      const r = await rig.spawn(['up', '--progress', 'json', ...args], { env: { ...env, ...extra } });
      expect(r.code).toBe(0);
      return events(r.stdout).find((e) => e.type === 'run-done') as unknown as { summary: { built: number; fresh: number; fromWitness?: boolean } };
    };
    await summary(['app-3.10-none']);
    expect((await summary(['app-3.10-none'])).summary).toMatchObject({ built: 0, fresh: 1, fromWitness: true });
    // Another --set is another manifest: checked in full (and the witness of the plain one kept apart).
    expect((await summary(['app-3.10-none', '--set', 'app.args.extra=c'])).summary).toMatchObject({ built: 1 });
    expect((await summary(['app-3.10-none', '--set', 'app.args.extra=c'])).summary).toMatchObject({ built: 0, fresh: 1, fromWitness: true });

    // A variable: every up checks in full, and sees a new value.
    rig.write({ 'orchestrator.yaml': manifest('a').replace('output: build/{{ py }}-{{ cuda }}/', 'output: build/${FLAVOUR:-plain}/{{ py }}-{{ cuda }}/') });
    expect((await summary(['app-3.10-none'], { FLAVOUR: 'x' })).summary).toMatchObject({ built: 1 });
    expect((await summary(['app-3.10-none'], { FLAVOUR: 'x' })).summary.fromWitness).toBeUndefined();
    expect((await summary(['app-3.10-none'], { FLAVOUR: 'y' })).summary).toMatchObject({ built: 1 });
    expect(existsSync(rig.path('build/y/3.10-none/args'))).toBe(true);
  });
});
