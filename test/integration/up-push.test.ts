/**
 * `targets.NAME.push:` through the built CLI against the real docker-registry: `up` builds and
 * pushes (skopeo reads it back), a second `up` pushes nothing, a %runscript edit pushes again with
 * one new layer, `--push` forces a push, a registry that is down fails that target with one error
 * at its push entry while its output and record stay (its dependents build; the next `up` pushes
 * it), matrix tags are filled, and a bad reference is one located error at validate.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { freePort, registryTest } from '../helpers/registry.js';

const it = registryTest('orchestrator-up-push-', { NO_COLOR: '1' });

const recipe = (runscript: string): string => ['%post', '    echo built > /built.txt', '%runscript', `    ${runscript}`, ''].join('\n');

const manifest = (push: string): string => `version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n    push:\n      - ${push}\n`;

const layersOf = (ref: string): string[] =>
  (JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' })) as { layers: Array<{ digest: string }> }).layers.map(
    (l) => l.digest,
  );

interface JsonEvent {
  type: string;
  [k: string]: unknown;
}
/** Plain lines without their timestamps. */
const plain = (stdout: string): string => stdout.replace(/^\d\d:\d\d:\d\d\.\d{3} /gm, '');

const events = (stdout: string): JsonEvent[] =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as JsonEvent);

describe('up with push:', () => {
  it('pushes after the build, not again when nothing changed, again after a %runscript edit (one new layer), and always with --push', async ({ rig, env, registry }) => {
    const ref = `${registry.host}/team/box:v1`;
    rig.write({ 'orchestrator.yaml': manifest(`docker://${ref}`), 'app.def': recipe('echo one') });

    const first = await rig.spawn(['up', '--progress', 'json'], { env });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const e1 = events(first.stdout);
    expect(e1.find((e) => e.type === 'push-started')).toMatchObject({ target: 'box', destination: ref, why: 'not pushed there yet' });
    const done1 = e1.find((e) => e.type === 'push-done')!;
    expect(done1).toMatchObject({ target: 'box', destination: ref, layers: 3, blobsPresent: 0, blobsUploaded: 4 });
    expect(done1['bytesSent']).toBeGreaterThan(0);
    // Every blob is reported, with its size and how it got there.
    expect(e1.filter((e) => e.type === 'push-blob' && e['how'] === 'uploaded')).toHaveLength(4);
    expect(e1.at(-1)).toMatchObject({ type: 'run-done', summary: { built: 1, pushed: 1, failed: 0 } });
    // What the registry has is what was reported, and what the state recorded.
    const digest1 = String(done1['digest']);
    expect(execFileSync('skopeo', ['inspect', '--format', '{{.Digest}}', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' }).trim()).toBe(digest1);
    const layers1 = layersOf(ref);
    expect(layers1).toHaveLength(3);
    const state1 = JSON.parse(readFileSync(rig.path('.orchestrator/state.json'), 'utf8')) as { targets: { box: { key: string; pushed: Record<string, { key: string; digest: string }> } } };
    expect(state1.targets.box.pushed[ref]).toMatchObject({ key: state1.targets.box.key, digest: digest1 });

    // Fresh and pushed: nothing at all.
    const second = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(second.code).toBe(0);
    expect(plain(second.stdout)).toMatch(/^box: fresh$/m);
    expect(plain(second.stdout)).not.toContain('push');

    const plan = await rig.spawn(['plan'], { env });
    expect(plan.stdout).toContain(`     push:    docker://${ref}: pushed, up to date\n`);

    // A %runscript edit: a new key, so a new push, and only the top layer (the metadata step) is new.
    rig.write({ 'app.def': recipe('echo two') });
    const dry = await rig.spawn(['up', '--dry-run', '--progress', 'plain'], { env });
    expect(plain(dry.stdout)).toContain(`box: would push to ${ref} (output changed since the last push there)\n`);
    const third = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(third.code).toBe(0);
    expect(plain(third.stdout)).toContain(`box: pushing to ${ref} (output changed since the last push there)\n`);
    expect(plain(third.stdout)).toMatch(new RegExp(`box: pushed to ${ref.replace(/\./g, '\\.')} \\(sha256:[0-9a-f]{12}\\) in [^:]+: 3 layers, 2 blobs uploaded \\([^)]+\\), 2 already there\\n`));
    expect(plain(third.stdout)).toMatch(/built 1, .*pushed 1 image \(/);
    const layers3 = layersOf(ref);
    expect(layers3.slice(0, 2)).toEqual(layers1.slice(0, 2));
    expect(layers3[2]).not.toBe(layers1[2]);

    // --push: pushed though nothing changed; every blob already there.
    const forced = await rig.spawn(['up', '--push', '--progress', 'plain'], { env });
    expect(forced.code).toBe(0);
    expect(plain(forced.stdout)).toContain(`box: pushing to ${ref} (push forced (--push))\n`);
    expect(plain(forced.stdout)).toMatch(/: 3 layers, 0 blobs uploaded \(0 B\), 4 already there\n/);
    expect(plain(forced.stdout)).toMatch(/^box: fresh$/m);
  }, 240_000);

  it('fails the target with one error at its push entry when the registry is down, keeps output and record, builds its dependents, and the next up pushes', async ({ rig, env, registry }) => {
    const down = `127.0.0.1:${await freePort()}`;
    // A dependent of box, which needs box's output and not its push.
    const withDependent = (push: string): string => `${manifest(push)}  on-top:\n    from: target:box\n    format: sandbox\n`;
    rig.write({ 'orchestrator.yaml': withDependent(`docker://${down}/team/box:v1`), 'app.def': recipe('echo one') });
    const failed = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(failed.code).toBe(1);
    expect(plain(failed.stdout)).toMatch(/^box: FAILED$/m);
    const errors = failed.stderr.split('\n').filter((l) => / error: /.test(l));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(new RegExp(`^orchestrator\\.yaml:8:9: error: pushing box to docker://${down}/team/box:v1 failed: .*${down.replace(/\./g, '\\.')}`));
    expect(failed.stderr).toContain("the next 'orchestrator up' pushes it again");
    // Its output is built: the dependent builds from it (not "skipped: dependency box did not build").
    expect(plain(failed.stdout)).not.toContain('on-top: skipped');
    expect(plain(failed.stdout)).toMatch(/^on-top: built in /m);
    expect(readFileSync(rig.path('build/on-top/built.txt'), 'utf8')).toBe('built\n');
    expect(plain(failed.stdout)).toMatch(/built 1, fresh 0, failed 1, skipped 0, /);
    // The output and its record are there; nothing is recorded as pushed.
    expect(statSync(rig.path('build/box.simg')).size).toBeGreaterThan(0);
    const state = JSON.parse(readFileSync(rig.path('.orchestrator/state.json'), 'utf8')) as { targets: { box: { key: string; pushed?: unknown } } };
    expect(state.targets.box.key).toMatch(/^sha256:/);
    expect(state.targets.box.pushed).toBeUndefined();

    // The registry is back (the manifest now names the live one): the output is fresh, only the push is done.
    const ref = `${registry.host}/team/box-retry:v1`;
    rig.write({ 'orchestrator.yaml': withDependent(`docker://${ref}`) });
    const plan = await rig.spawn(['plan'], { env });
    expect(plan.stdout).toContain('1. box: fresh\n');
    expect(plan.stdout).toContain('2. on-top: fresh\n');
    expect(plan.stdout).toContain(`     push:    docker://${ref}: would push (not pushed there yet)\n`);
    const retry = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(retry.code).toBe(0);
    expect(plain(retry.stdout)).not.toContain('building');
    expect(plain(retry.stdout)).toContain(`box: pushing to ${ref} (not pushed there yet)\n`);
    expect(plain(retry.stdout)).toMatch(/built 0, fresh 2, .*pushed 1 image/);
    expect(layersOf(ref)).toHaveLength(3);
  }, 240_000);

  it('fills {{ KEY }} in the push tags of matrix variants', async ({ rig, env, registry }) => {
    rig.write({
      'orchestrator.yaml': [
        'version: 1',
        'targets:',
        '  box:',
        '    matrix:',
        '      flavour: [a, b]',
        '    from: ./rootfs',
        '    recipe: app.def',
        '    format: sandbox',
        '    push:',
        `      - docker://${registry.host}/team/box:{{ flavour }}`,
        '',
      ].join('\n'),
      'app.def': recipe('echo $FLAVOUR'),
    });
    const plan = await rig.spawn(['plan', '--json'], { env });
    const targets = (JSON.parse(plan.stdout) as { targets: Array<{ name: string; push: Array<{ destination: string; push: boolean; why: string }> }> }).targets;
    expect(targets.map((t) => [t.name, t.push])).toEqual([
      ['box-a', [{ text: `docker://${registry.host}/team/box:a`, destination: `${registry.host}/team/box:a`, push: true, why: 'not pushed there yet' }]],
      ['box-b', [{ text: `docker://${registry.host}/team/box:b`, destination: `${registry.host}/team/box:b`, push: true, why: 'not pushed there yet' }]],
    ]);
    const up = await rig.spawn(['up', '-j', '1', '--progress', 'plain'], { env });
    expect(up.code).toBe(0);
    expect(layersOf(`${registry.host}/team/box:a`)).toHaveLength(3);
    expect(layersOf(`${registry.host}/team/box:b`)).toHaveLength(3);
  }, 240_000);

  it('gives one located error for a push reference that is not docker:// or does not parse', async ({ rig, env }) => {
    rig.write({
      'orchestrator.yaml': [
        'version: 1',
        'targets:',
        '  box:',
        '    from: ./rootfs',
        '    format: sandbox',
        '    push:',
        '      - registry.example.com/team/box:v1',
        '      - docker://registry.example.com/Team/box:v1',
        '      - docker://registry.example.com/team/box@sha256:' + '0'.repeat(64),
        '',
      ].join('\n'),
    });
    const r = await rig.spawn(['validate'], { env });
    expect(r.code).toBe(2);
    const errors = r.stderr.split('\n').filter((l) => / error: /.test(l));
    expect(errors).toEqual([
      "orchestrator.yaml:7:9: error: push 'registry.example.com/team/box:v1' of target 'box' is not a docker:// reference",
      "orchestrator.yaml:8:9: error: push 'docker://registry.example.com/Team/box:v1' of target 'box': repository name component 'Team' must be lowercase",
      `orchestrator.yaml:9:9: error: push 'docker://registry.example.com/team/box@sha256:${'0'.repeat(64)}' of target 'box' names a digest; push to a tag`,
    ]);
    expect(r.stderr).toContain('hint: write docker://REGISTRY/REPOSITORY:TAG');
  });
});
