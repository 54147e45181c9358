/**
 * The merged overlay view of layers unpacked by orchestrator equals GNU tar's result of the same
 * layers applied in order. GNU tar does not know OCI whiteouts, so the reference applies them
 * itself before each `tar -x` (see `applyWhiteouts`): `.wh.NAME` deletes NAME from the layers
 * below, `.wh..wh..opq` empties its folder of what the layers below put there; `.wh.*` entries are
 * then excluded from the extraction. That is the OCI image spec's rule, written out plainly.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { overlayMountOptions, runInLayerStack } from '../../src/layers/mount-layers.js';
import { unpackLayer } from '../../src/layers/unpack-layer.js';
import { buildLayer, makeSandbox, type BuiltLayer, type EntrySpec, type Sandbox } from '../helpers/layers.js';
import { applyWhiteouts, DESCRIBE, parseDescription } from '../helpers/overlay-reference.js';

const LAYERS: EntrySpec[][] = [
  [
    { name: 'etc/', type: 'directory' },
    { name: 'etc/hostname', content: 'base\n' },
    { name: 'etc/motd', content: 'welcome\n' },
    { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n' },
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', content: 'ELF...busybox', mode: 0o755 },
    { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
    { name: 'bin/ls', type: 'link', linkname: 'bin/busybox' },
    { name: 'bin/su', content: 'su', mode: 0o4755 },
    { name: 'usr/share/doc/pkg/README', content: 'docs' },
    { name: 'usr/share/doc/pkg/LICENSE', content: 'MIT' },
    { name: 'var/cache/apt/pkgcache.bin', content: 'cache-1' },
    { name: 'var/cache/apt/archives/a.deb', content: 'deb' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'home/user/.profile', content: 'PS1=$\n', uid: 1000, gid: 1000, mode: 0o600 },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'run/initctl', type: 'fifo', mode: 0o600 },
  ],
  [
    { name: 'etc/.wh.motd', content: '' },
    { name: 'etc/hostname', content: 'second\n' },
    { name: 'usr/share/.wh.doc', content: '' },
    { name: 'var/cache/apt/', type: 'directory', mode: 0o750 },
    { name: 'var/cache/apt/.wh..wh..opq', content: '' },
    { name: 'var/cache/apt/fresh.bin', content: 'cache-2' },
    { name: 'opt/tool/bin/tool', content: 'tool v1', mode: 0o755 },
    { name: 'home/user/', type: 'directory', uid: 1000, gid: 1000, mode: 0o700 },
  ],
  [
    { name: 'etc/motd', content: 'back again\n' },
    { name: 'bin/sh', content: '#!/bin/static-sh\n', mode: 0o755 },
    { name: 'opt/tool/bin/.wh.tool', content: '' },
    { name: 'opt/tool/bin/tool2', content: 'tool v2', mode: 0o755 },
    // Image builders (Docker, BuildKit, Go's archive/tar users) always write the parent folders of
    // a layer's files. A layer without them gets implicit 0755 root folders, which in an overlay
    // stack hide the lower layers' folder attributes (tar -x would keep them): see the README.
    { name: 'var/cache/apt/', type: 'directory', mode: 0o750 },
    { name: 'var/cache/apt/third.bin', content: 'cache-3', gid: 8 },
    { name: 'usr/share/doc/new/README', content: 'new docs' },
    { name: 'bin/.wh.su', content: '' },
  ],
];

let box: Sandbox;
const built: BuiltLayer[] = [];
const unpacked: string[] = [];

beforeAll(async () => {
  box = makeSandbox('orch-overlay-');
  for (const entries of LAYERS) {
    const layer = await buildLayer(entries);
    built.push(layer);
    const r = await unpackLayer({ source: box.writeBlob(layer), mediaType: layer.mediaType, expectedDiffId: layer.diffId, destination: box.destination(layer.diffId), tmpDir: box.tmpDir });
    if (!r.ok) throw new Error(r.error.message);
    unpacked.push(r.value.path);
  }
});

afterAll(() => {
  box?.cleanup();
});

describe('overlay stacks of unpacked layers', () => {
  it('builds overlay options top first, relative to a shared parent, and refuses paths overlayfs cannot take', () => {
    expect(overlayMountOptions({ lowers: ['/s/layers/b', '/s/layers/a'] })).toEqual({ ok: true, value: { type: 'overlay', options: 'lowerdir=b:a', cwd: '/s/layers' } });
    expect(overlayMountOptions({ lowers: ['/x/b', '/y/a'], upper: '/u', work: '/w' })).toEqual({ ok: true, value: { type: 'overlay', options: 'lowerdir=/x/b:/y/a,upperdir=/u,workdir=/w' } });
    expect(overlayMountOptions({ lowers: ['/s/a'] })).toEqual({ ok: true, value: { type: 'bind', options: '/s/a' } });
    const bad = overlayMountOptions({ lowers: ['/s/a:b', '/s/c'] });
    expect(bad.ok === false && bad.error).toMatchObject({ reason: 'overlay-bad-stack', message: "the path '/s/a:b' cannot be given to overlayfs: it contains ',', ':', '\\' or a newline" });
    const noWork = overlayMountOptions({ lowers: ['/a', '/b'], upper: '/u' });
    expect(noWork.ok === false && noWork.error.message).toBe('an overlay upper folder needs a work folder, and a work folder an upper one');
  });

  it('gives the same tree as GNU tar -x of the same layers in order, whiteouts and opaque folders applied', async () => {
    // Reference: GNU tar, with the OCI whiteout rule applied before each layer.
    const ref = join(box.root, 'reference');
    mkdirSync(ref, { mode: 0o755 });
    built.forEach((layer, i) => {
      const entries = LAYERS[i] ?? [];
      applyWhiteouts(ref, entries);
      const blob = join(box.root, `ref-layer-${i}.tar.gz`);
      writeFileSync(blob, layer.blob);
      execFileSync('tar', ['-x', '-z', '-p', '--numeric-owner', '--same-owner', '--exclude=.wh.*', '-C', ref, '-f', blob]);
    });
    const expected = parseDescription(execFileSync('sh', ['-c', DESCRIBE, 'sh', ref]).toString());

    const target = join(box.root, 'merged');
    mkdirSync(target);
    const r = await runInLayerStack({ lowers: [...unpacked].reverse(), target, command: ['sh', '-c', DESCRIBE, 'sh', target] });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.stderr).toBe('');
    expect(r.value.exitCode).toBe(0);
    const merged = parseDescription(r.value.stdout.toString());

    expect(merged).toEqual(expected);
    // And the stack really did apply the deletions (the comparison is not vacuous).
    expect(Object.keys(merged)).toEqual(expect.arrayContaining(['./etc/motd', './var/cache/apt/fresh.bin', './var/cache/apt/third.bin', './usr/share/doc/new/README', './opt/tool/bin/tool2']));
    for (const gone of ['./usr/share/doc/pkg', './var/cache/apt/pkgcache.bin', './var/cache/apt/archives', './opt/tool/bin/tool', './bin/su']) expect(merged[gone]).toBeUndefined();
    expect(merged['./etc/motd']).toMatch(/^f 644 0 0 11 - /);
    expect(merged['./bin/sh']).toMatch(/^f 755 0 0 17 - /);
    expect(merged['./home/user']).toBe('d 700 1000 1000 - - -');
    // The mount lived only in the command's namespace.
    expect(readdirSync(target)).toEqual([]);
  });

  it('mounts with an upper and work folder, and the lowers stay untouched by writes', async () => {
    const upper = join(box.root, 'upper');
    const work = join(box.root, 'work');
    const target = join(box.root, 'merged-rw');
    for (const d of [upper, work, target]) mkdirSync(d);
    const r = await runInLayerStack({ lowers: [...unpacked].reverse(), upper, work, target, command: ['sh', '-c', 'echo changed > "$1/etc/hostname" && rm "$1/etc/passwd" && cat "$1/etc/hostname"', 'sh', target] });
    expect(r.ok && r.value).toMatchObject({ exitCode: 0, stderr: '' });
    expect(r.ok && r.value.stdout.toString()).toBe('changed\n');
    expect(execFileSync('cat', [join(upper, 'etc/hostname')]).toString()).toBe('changed\n');
    expect(execFileSync('stat', ['-c', '%F %t:%T', join(upper, 'etc/passwd')]).toString()).toBe('character special file 0:0\n');
    expect(execFileSync('cat', [join(unpacked[0] as string, 'etc/passwd')]).toString()).toContain('root:x:0:0');
  });

  it('reports a mount that fails', async () => {
    const r = await runInLayerStack({ lowers: [join(box.root, 'missing-a'), join(box.root, 'missing-b')], target: join(box.root, 'nowhere'), command: ['true'] });
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.error.reason).toBe('mount-failed');
    expect(r.ok === false && r.error.message).toMatch(/^cannot mount the layer stack at .*nowhere: mount: /);
  });
});
