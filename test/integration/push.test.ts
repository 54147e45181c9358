/**
 * `orchestrator push` through the built CLI to the real docker-registry: a target's cached steps
 * become one layer each, skopeo and umoci read the image back, its tree is the sandbox output's
 * entry by entry (owners, modes, xattrs, links, deletions applied), `build --sandbox` from the
 * pushed reference gives that tree again, and a push after a %runscript edit uploads one layer.
 * An ext3 `.img` keeps its setuid and sticky bits and links' owners; a docker:// base goes up as
 * its pulled blobs (mounted), and a step packed once is never packed again.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { snapshotTree } from '../helpers/layers.js';
import { registryTest } from '../helpers/registry.js';

const it = registryTest('orchestrator-push-');

const recipe = (runscript: string): string =>
  [
    '%post',
    '    mkdir -p /srv/app/data && echo hello > /srv/app/data/a.txt',
    '    ln /srv/app/data/a.txt /srv/app/data/hard.txt && ln -s data/a.txt /srv/app/link',
    '    chown -R 1000:2000 /srv/app && chmod 0750 /srv/app/data && chmod 4755 /bin/busybox',
    '    busybox setfattr -n user.note -v pushed /srv/app/data/a.txt 2>/dev/null || true',
    '    rm /root-only.txt && rm -rf /var && mkdir -p /var/new',
    '%labels',
    '    Maintainer tests',
    '%runscript',
    `    ${runscript}`,
    '',
  ].join('\n');

/** The tree of a folder, for comparing images entry by entry (mtimes aside: folders' change with their contents). */
const tree = (root: string) => {
  const t = snapshotTree(root, { xattrs: true });
  delete t['.'];
  return t;
};

describe('orchestrator push', () => {
  it('publishes a target as one layer per step that skopeo, umoci and build read back as the same tree; an edit uploads one layer', async ({ rig, env, registry }) => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n', 'app.def': recipe('echo hello') });
    const up = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(up.code).toBe(0);
    const ref = `${registry.host}/team/box:v1`;
    const pushed = await rig.spawn(['push', 'box', `docker://${ref}`], { env });
    expect(pushed.stderr.match(/: uploaded /g)).toHaveLength(4);
    expect(pushed.code).toBe(0);
    expect(pushed.stdout).toMatch(new RegExp(`^pushed target box to docker://${ref.replace(/\./g, '\\.')}@sha256:[0-9a-f]{64}: 3 layers, 3 uploaded \\(`));

    const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' })) as { layers: unknown[] };
    expect(manifest.layers).toHaveLength(3);
    const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' })) as {
      config: { Cmd: string[]; Labels: Record<string, string>; Env: string[] };
    };
    expect(config.config.Cmd).toEqual(['/.singularity.d/runscript']);
    expect(config.config.Labels['Maintainer']).toBe('tests');
    expect(config.config.Env.some((e) => e.startsWith('PATH='))).toBe(true);

    // umoci unpacks the layers (whiteouts applied) into the sandbox's tree.
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${rig.path('layout')}:v1`], { stdio: 'ignore' });
    execFileSync('umoci', ['unpack', '--image', `${rig.path('layout')}:v1`, rig.path('bundle')], { stdio: 'ignore' });
    const want = tree(rig.path('build/box'));
    expect(want['root-only.txt']).toBeUndefined();
    expect(want['var/new']).toMatchObject({ type: 'dir' });
    expect(want['srv/app/link']).toMatchObject({ type: 'symlink', link: 'data/a.txt' });
    expect(tree(rig.path('bundle/rootfs'))).toEqual(want);

    // And a build from the pushed reference gives it once more.
    const again = await rig.spawn(['build', '--sandbox', rig.path('from-registry'), `docker://${ref}`], { env });
    expect(again.code).toBe(0);
    // Except the two files a build from a registry writes from the image config (its Env, and
    // labels with this build's date), as for any docker:// source.
    const rebuilt = tree(rig.path('from-registry'));
    const regenerated = ['.singularity.d/env/10-docker2singularity.sh', '.singularity.d/labels.json'];
    for (const t of [rebuilt, want]) for (const p of regenerated) delete t[p];
    expect(rebuilt).toEqual(want);

    // A %runscript edit changes the metadata step only: one new layer (and the config).
    rig.write({ 'app.def': recipe('echo edited') });
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    const second = await rig.spawn(['push', 'box', `docker://${registry.host}/team/box:v2`], { env });
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/: 3 layers, 1 uploaded \(/);
    expect(second.stderr.match(/: uploaded /g)).toHaveLength(2);
    expect(second.stderr.match(/: already there/g)).toHaveLength(2);
  });

  it('publishes an image file as one layer', async ({ rig, env, registry }) => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  img:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n', 'app.def': recipe('echo hello') });
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    const pushed = await rig.spawn(['push', rig.path('build/img.simg'), `docker://${registry.host}/team/img:v1`], { env });
    expect(pushed.code).toBe(0);
    expect(pushed.stdout).toMatch(/: 1 layer, 1 uploaded \(/);
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/team/img:v1`, `oci:${rig.path('layout')}:v1`], { stdio: 'ignore' });
    execFileSync('umoci', ['unpack', '--image', `${rig.path('layout')}:v1`, rig.path('bundle')], { stdio: 'ignore' });
    execFileSync('unsquashfs', ['-o', '31', '-d', rig.path('unpacked'), rig.path('build/img.simg')], { stdio: 'ignore' });
    expect(tree(rig.path('bundle/rootfs'))).toEqual(tree(rig.path('unpacked')));
  });

  it('publishes an ext3 image file (.img target) as one layer with the tree of the same recipe as a sandbox', async ({ rig, env, registry }) => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  img:\n    from: ./rootfs\n    recipe: app.def\n    output: build/img.img\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n',
      'app.def': recipe('echo hello'),
    });
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    const pushed = await rig.spawn(['push', rig.path('build/img.img'), `docker://${registry.host}/team/ext3:v1`], { env });
    expect(pushed.code).toBe(0);
    expect(pushed.stdout).toMatch(new RegExp(`^pushed ${rig.path('build/img.img').replace(/[.]/g, '\\.')} to docker://.*: 1 layer, 1 uploaded \\(`));
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/team/ext3:v1`, `oci:${rig.path('layout')}:v1`], { stdio: 'ignore' });
    execFileSync('umoci', ['unpack', '--image', `${rig.path('layout')}:v1`, rig.path('bundle')], { stdio: 'ignore' });
    const got = tree(rig.path('bundle/rootfs'));
    const want = tree(rig.path('build/box'));
    // What mkfs.ext3 adds to every file system.
    delete got['lost+found'];
    expect(got).toEqual(want);
  });

  it('pushes a registry base layer as its stored blob (mounted on the same registry) and an unchanged step without packing it', async ({ rig, env, registry }) => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  base:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n', 'app.def': recipe('echo hello') });
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    expect((await rig.spawn(['push', 'base', `docker://${registry.host}/team/base:v1`], { env })).code).toBe(0);
    const layersOf = (ref: string): string[] =>
      (JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' })) as { layers: Array<{ digest: string }> }).layers.map((l) => l.digest);
    const baseLayers = layersOf(`${registry.host}/team/base:v1`);

    rig.write({
      'orchestrator.yaml': `version: 1\ntargets:\n  app:\n    from: docker://${registry.host}/team/base:v1\n    recipe: app2.def\n    format: sandbox\n`,
      'app2.def': '%post\n    echo app > /app.txt\n%runscript\n    cat /app.txt\n',
    });
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    const first = await rig.spawn(['push', 'app', `docker://${registry.host}/other/app:v1`], { env });
    expect(first.code).toBe(0);
    // The base's three layers are its blobs as pulled, mounted from team/base; %post and the metadata step are packed.
    expect(first.stderr.match(/: mounted/g)).toHaveLength(3);
    expect(first.stdout).toMatch(/: 5 layers, 2 uploaded \(/);
    const appLayers = layersOf(`${registry.host}/other/app:v1`);
    expect(appLayers.slice(0, 3)).toEqual(baseLayers);

    // Each packed step is recorded (and its blob kept in the store), so the next push packs
    // nothing and gives the same layers (reproducible).
    const records = readdirSync(rig.path('cache/packed')).filter((n) => n.startsWith('snapshots-'));
    const recorded = records.map((n) => (JSON.parse(readFileSync(rig.path(`cache/packed/${n}`), 'utf8')) as { digest: string }).digest);
    expect(recorded).toEqual(expect.arrayContaining(appLayers.slice(3)));
    const second = await rig.spawn(['push', 'app', `docker://${registry.host}/other/app:v2`], { env });
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/: 5 layers, 0 uploaded \(/);
    expect(layersOf(`${registry.host}/other/app:v2`)).toEqual(appLayers);
    // A new repository on the same registry: every layer mounted, none packed or sent (the config is).
    const third = await rig.spawn(['push', 'app', `docker://${registry.host}/third/app:v1`], { env });
    expect(third.code).toBe(0);
    expect(third.stdout).toMatch(/: 5 layers, 0 uploaded \(/);
    expect(third.stderr.match(/: mounted/g)).toHaveLength(5);
    expect(layersOf(`${registry.host}/third/app:v1`)).toEqual(appLayers);
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/other/app:v2`, `oci:${rig.path('layout')}:v2`], { stdio: 'ignore' });
    execFileSync('umoci', ['unpack', '--image', `${rig.path('layout')}:v2`, rig.path('bundle')], { stdio: 'ignore' });
    expect(tree(rig.path('bundle/rootfs'))).toEqual(tree(rig.path('build/app')));
  });

  it('refuses a destination that is not docker:// or oras://', async ({ rig, env }) => {
    const r = await rig.spawn(['push', rig.path('rootfs'), 'library://x/y:z'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error: 'library://x/y:z' is not a registry reference");
  });
});
