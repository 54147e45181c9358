/**
 * `oras://` through the built CLI and the real docker-registry: a SIF target pushed as Apptainer's
 * ORAS artifact (skopeo shows the sylabs media types), pulled back byte for byte and pinned in
 * orchestrator.lock; bad inputs (a target that is not SIF, a Docker image, a non-SIF blob, a
 * missing tag) are each one clear error that leaves nothing behind.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { sha256Digest } from '../../src/core/digest.js';
import { parseReference } from '../../src/registry/reference.js';
import { snapshotTree } from '../helpers/layers.js';
import { registryTest } from '../helpers/registry.js';
import { pushBlob, pushManifest } from '../helpers/registry-push.js';

const it = registryTest('orchestrator-oras-');

const MANIFEST = [
  'version: 1',
  'targets:',
  '  box:',
  '    from: ./rootfs',
  '    recipe: app.def',
  '    format: sif',
  '    output: build/box.sif',
  '  flat:',
  '    from: ./rootfs',
  '    format: squashfs',
  '    output: build/flat.simg',
  '',
].join('\n');

const raw = (ref: string): Record<string, unknown> => JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Record<string, unknown>;

/** Puts an OCI manifest with one layer of `bytes` typed `layerType` at `ref` (bypassing our push). */
async function putArtifact(ref: string, bytes: Uint8Array, layerType: string): Promise<void> {
  const r = parseReference(`docker://${ref}`);
  if (!r.ok) throw new Error(r.error.message);
  const config = new Uint8Array(Buffer.from('{}'));
  await pushBlob(r.value, config);
  const digest = await pushBlob(r.value, bytes);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.sylabs.sif.config.v1+json', digest: sha256Digest(config), size: 2 },
    layers: [{ mediaType: layerType, digest, size: bytes.length }],
  };
  await pushManifest(r.value, new Uint8Array(Buffer.from(JSON.stringify(manifest))), manifest.mediaType);
}

describe('oras://', () => {
  it('pushes a SIF target as Apptainer does, pulls it back byte for byte and pins the tag in orchestrator.lock', async ({ rig, env, registry }) => {
    rig.write({ 'orchestrator.yaml': MANIFEST, 'app.def': '%post\n    echo hello > /hello.txt\n%runscript\n    cat /hello.txt\n' });
    const up = await rig.spawn(['up', 'box', '--progress', 'plain'], { env });
    expect(up.code).toBe(0);
    const ref = `${registry.host}/team/box:v1`;
    const pushed = await rig.spawn(['push', 'box', `oras://${ref}`], { env });
    expect(pushed.stderr).not.toMatch(/error/);
    expect(pushed.code).toBe(0);
    expect(pushed.stdout).toMatch(/^pushed target box to oras:\/\/127\.0\.0\.1:\d+\/team\/box:v1@sha256:[0-9a-f]{64}: SIF /);

    const sifBytes = readFileSync(rig.path('build/box.sif'));
    const manifest = raw(ref) as { mediaType: string; artifactType?: string; annotations?: Record<string, string>; config: { mediaType: string; digest: string; size: number }; layers: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[] };
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifest.artifactType).toBeUndefined();
    // The SIF header's creation time (int64 seconds at byte 64), as Apptainer annotates it.
    const created = new Date(Number(sifBytes.readBigInt64LE(64)) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    expect(manifest.annotations).toEqual({ 'org.opencontainers.image.created': created });
    expect(manifest.config).toEqual({ mediaType: 'application/vnd.sylabs.sif.config.v1+json', digest: sha256Digest('{}'), size: 2 });
    expect(manifest.layers).toEqual([
      { mediaType: 'application/vnd.sylabs.sif.layer.v1.sif', digest: sha256Digest(sifBytes), size: sifBytes.length, annotations: { 'org.opencontainers.image.title': 'box.sif' } },
    ]);

    // Outside a project: to the named file, nothing pinned.
    mkdirSync(rig.path('elsewhere'));
    const pulled = await rig.spawn(['pull', `oras://${ref}`, 'copy.sif'], { env, cwd: rig.path('elsewhere') });
    expect(pulled.code).toBe(0);
    expect(readFileSync(rig.path('elsewhere/copy.sif')).equals(sifBytes)).toBe(true);
    expect(existsSync(rig.path('elsewhere/orchestrator.lock'))).toBe(false);
    const sif = await rig.spawn(['sif', 'list', rig.path('elsewhere/copy.sif')], { env });
    expect(sif.code).toBe(0);

    // Inside the project: the default name, the tag pinned to the manifest digest.
    const again = await rig.spawn(['pull', `oras://${ref}`], { env });
    expect(again.code).toBe(0);
    const digest = again.stdout.trim();
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(readFileSync(rig.path('box_v1.sif')).equals(sifBytes)).toBe(true);
    const lock = JSON.parse(readFileSync(rig.path('orchestrator.lock'), 'utf8')) as { images: Record<string, { digest: string }> };
    expect(lock.images[`oras://${ref}`]?.digest).toBe(digest);
  });

  it('builds from: oras:// and Bootstrap: oras into the SIF\'s tree, pinning the tag in orchestrator.lock', async ({ rig, env, registry }) => {
    rig.write({ 'orchestrator.yaml': MANIFEST, 'app.def': '%post\n    echo hello > /hello.txt\n' });
    expect((await rig.spawn(['up', 'box', '--progress', 'plain'], { env })).code).toBe(0);
    const ref = `${registry.host}/team/base:v1`;
    expect((await rig.spawn(['push', 'build/box.sif', `oras://${ref}`], { env })).code).toBe(0);

    rig.write({
      'consumer/orchestrator.yaml': [
        'version: 1',
        'targets:',
        `  viafrom:\n    from: oras://${ref}\n    format: sandbox`,
        '  viaheader:\n    recipe: header.def\n    format: sandbox',
        '  local:\n    from: ../build/box.sif\n    format: sandbox',
        '',
      ].join('\n'),
      'consumer/header.def': `Bootstrap: oras\nFrom: ${ref}\n`,
    });
    const cwd = rig.path('consumer');
    const up = await rig.spawn(['up', '--progress', 'plain'], { env, cwd });
    expect(up.stderr).not.toMatch(/error/);
    expect(up.code).toBe(0);
    const tree = (dir: string) => {
      const t = snapshotTree(rig.path(`consumer/build/${dir}`));
      delete t['.'];
      // Each unpacking of the SIF stamps its own build date into the labels.
      delete t['.singularity.d/labels.json'];
      return t;
    };
    expect(tree('viafrom')['hello.txt']).toBeDefined();
    expect(tree('viafrom')).toEqual(tree('local'));
    // A recipe build records its definition file; the rest is the SIF's tree.
    expect(readFileSync(rig.path('consumer/build/viaheader/.singularity.d/Singularity'), 'utf8')).toContain('Bootstrap: oras');
    const { ['.singularity.d/Singularity']: _def, ...viaheader } = tree('viaheader');
    const { ['.singularity.d/Singularity']: _localDef, ...local } = tree('local');
    expect(viaheader).toEqual(local);
    const lock = JSON.parse(readFileSync(rig.path('consumer/orchestrator.lock'), 'utf8')) as { images: Record<string, { digest: string }> };
    expect(lock.images[`oras://${ref}`]?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);

    // Pinned and cached: nothing to do the second time.
    const again = await rig.spawn(['up', '--progress', 'plain'], { env, cwd });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/built 0, fresh 3, failed 0/);
    // One-shot build from the reference, as `singularity build --sandbox OUT oras://...`.
    const oneShot = await rig.spawn(['build', '--sandbox', rig.path('oneshot'), `oras://${ref}`], { env, cwd });
    expect(oneShot.stderr).not.toMatch(/error/);
    expect(oneShot.code).toBe(0);
    const t = snapshotTree(rig.path('oneshot'));
    delete t['.'];
    delete t['.singularity.d/labels.json'];
    expect(t).toEqual(tree('local'));

    const pins = await rig.spawn(['lock'], { env, cwd });
    expect(pins.code).toBe(0);
    expect(pins.stdout).toBe(`oras://${ref}: ${lock.images[`oras://${ref}`]!.digest} (pinned)\n`);

    // A tag that is not there: one error, and the previous output and pins are kept.
    const before = readFileSync(rig.path('consumer/orchestrator.lock'), 'utf8');
    rig.write({ 'consumer/orchestrator.yaml': `version: 1\ntargets:\n  viafrom:\n    from: oras://${registry.host}/team/none:v1\n    format: sandbox\n` });
    const bad = await rig.spawn(['up', '--progress', 'plain'], { env, cwd });
    expect(bad.code).toBe(1);
    expect((bad.stdout + bad.stderr).match(/error/g)).toHaveLength(1);
    expect(bad.stdout + bad.stderr).toContain('not found');
    expect(tree('viafrom')).toEqual(tree('local'));
    expect(readFileSync(rig.path('consumer/orchestrator.lock'), 'utf8')).toBe(before);
  });

  it('refuses a target that is not SIF, and a file that is not SIF, before sending anything', async ({ rig, env, registry }) => {
    rig.write({ 'orchestrator.yaml': MANIFEST, 'app.def': '%post\n    true\n', 'notes.txt': 'not an image\n' });
    expect((await rig.spawn(['up', 'flat', '--progress', 'plain'], { env })).code).toBe(0);
    const target = await rig.spawn(['push', 'flat', `oras://${registry.host}/team/flat:v1`], { env });
    expect(target.code).toBe(2);
    expect(target.stderr.match(/error/g)).toHaveLength(1);
    expect(target.stderr).toContain('is not a SIF file');
    expect(target.stderr).toContain('format: sif');
    const file = await rig.spawn(['push', './notes.txt', `oras://${registry.host}/team/notes:v1`], { env });
    expect(file.code).toBe(2);
    expect(file.stderr).toContain('notes.txt is not a SIF file');
    const folder = await rig.spawn(['push', './rootfs', `oras://${registry.host}/team/rootfs:v1`], { env });
    expect(folder.code).toBe(2);
    expect(folder.stderr).toContain('./rootfs is a folder, not a SIF file');
    expect(() => raw(`${registry.host}/team/flat:v1`)).toThrow();
  });

  it('a Docker-typed layer, a non-SIF blob and a missing tag are each one clear error and leave no file', async ({ rig, env, registry }) => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets: {}\n' });
    await putArtifact(`${registry.host}/bad/docker:v1`, new Uint8Array(Buffer.from('layer')), 'application/vnd.oci.image.layer.v1.tar+gzip');
    await putArtifact(`${registry.host}/bad/text:v1`, new Uint8Array(Buffer.from('this is not a SIF file\n')), 'application/vnd.sylabs.sif.layer.v1.sif');

    const docker = await rig.spawn(['pull', `oras://${registry.host}/bad/docker:v1`, 'out.sif'], { env });
    expect(docker.code).toBe(1);
    expect(docker.stderr).toContain('not a SIF artifact');
    expect(docker.stderr).toContain('application/vnd.oci.image.layer.v1.tar+gzip');

    const text = await rig.spawn(['pull', `oras://${registry.host}/bad/text:v1`, 'out.sif'], { env });
    expect(text.code).toBe(1);
    expect(text.stderr).toContain('the layer is not a SIF file');

    const missing = await rig.spawn(['pull', `oras://${registry.host}/bad/none:v1`, 'out.sif'], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('not found');

    // A file already there is left as it was by a failed pull.
    rig.write({ 'keep.sif': 'old content\n' });
    const over = await rig.spawn(['pull', `oras://${registry.host}/bad/text:v1`, 'keep.sif'], { env });
    expect(over.code).toBe(1);
    expect(readFileSync(rig.path('keep.sif'), 'utf8')).toBe('old content\n');

    // FILE is for oras:// only.
    const extra = await rig.spawn(['pull', `docker://${registry.host}/bad/docker:v1`, 'out.sif'], { env });
    expect(extra.code).toBe(2);
    expect(extra.stderr).toContain("unexpected argument 'out.sif'");

    for (const r of [docker, text, missing]) expect(r.stderr.match(/error/g)).toHaveLength(1);
    expect(readdirSync(rig.dir).filter((f) => f.includes('out') || (f.endsWith('.sif') && f !== 'keep.sif') || f.includes('.tmp-'))).toEqual([]);
    // The non-SIF blob was not kept in the cache.
    const blobs = execFileSync('find', [rig.path('cache'), '-type', 'f'], { encoding: 'utf8' });
    expect(blobs).not.toContain(sha256Digest('this is not a SIF file\n').slice(7));
    expect(existsSync(rig.path('orchestrator.lock'))).toBe(false);
  });
});
