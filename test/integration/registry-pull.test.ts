import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseReference, type ImageReference } from '../../src/registry/reference.js';
import { pullImage } from '../../src/registry/pull-image.js';
import { RegistryClient } from '../../src/registry/registry-client.js';
import type { RegistryEvent } from '../../src/registry/registry-events.js';
import { Store } from '../../src/store/store.js';
import { buildImage, buildIndex, busyboxImage, pushImage, pushIndex, tarLayer, threeLayerImage, twoPlatformIndex, type BuiltImage, type BuiltIndex } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

function ref(text: string): ImageReference {
  const r = parseReference(text);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

let registry: TestRegistry;
let busybox: BuiltImage;
let three: BuiltImage;
let index: BuiltIndex;
let cacheDir: string;

beforeAll(async () => {
  registry = await startRegistry();
  busybox = await busyboxImage();
  three = await threeLayerImage();
  index = await twoPlatformIndex();
  await pushImage(`${registry.host}/library/busybox:latest`, busybox);
  await pushImage(`${registry.host}/test/three:v1`, three);
  await pushIndex(`${registry.host}/test/multi:latest`, index);
});
afterAll(async () => {
  await registry?.stop();
});
beforeEach(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'orch-cache-'));
});
afterEach(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

describe('pullImage against a real registry', () => {
  it('pulls busybox into the store, and a second pull downloads nothing', async () => {
    const store = await Store.open({ dir: cacheDir });
    const events: RegistryEvent[] = [];
    const r = await pullImage(ref(`docker://${registry.host}/library/busybox`), { store, onEvent: (e) => events.push(e) });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.digest).toBe(busybox.manifestDigest);
    expect(r.value.layers).toEqual([
      { digest: busybox.layers[0]!.digest, size: busybox.layers[0]!.size, mediaType: busybox.layers[0]!.mediaType, diffId: busybox.layers[0]!.diffId },
    ]);
    expect(r.value.downloadedBytes).toBe(busybox.layers[0]!.size + busybox.config.length);
    expect(await store.blobs.verify(busybox.layers[0]!.digest)).toBe('valid');
    const progress = events.filter((e) => e.type === 'blob-progress');
    expect(progress.at(-1)).toEqual({ type: 'blob-progress', digest: busybox.layers[0]!.digest, bytes: busybox.layers[0]!.size, total: busybox.layers[0]!.size });
    expect(events[0]).toMatchObject({ type: 'manifest-resolved', digest: busybox.manifestDigest, platform: 'linux/amd64', cached: false });

    const again = await pullImage(ref(`docker://${registry.host}/library/busybox`), { store });
    if (!again.ok) throw new Error(again.error.message);
    expect(again.value.downloadedBytes).toBe(0);
    expect(again.value.cachedBlobs).toBe(2);
  });

  it('pulls the three-layer image with diff ids in order', async () => {
    const store = await Store.open({ dir: cacheDir });
    const r = await pullImage(ref(`${registry.host}/test/three:v1`), { store });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.layers.map((l) => l.diffId)).toEqual(three.layers.map((l) => l.diffId));
    expect((await readdir(store.blobs.dir)).length).toBe(5); // manifest, config, 3 layers
  });

  it('chooses a platform from an index, and names the ones available when asked for another', async () => {
    const store = await Store.open({ dir: cacheDir });
    const amd = await pullImage(ref(`${registry.host}/test/multi`), { store });
    if (!amd.ok) throw new Error(amd.error.message);
    expect(amd.value.digest).toBe(index.images[0]!.manifestDigest);
    expect(amd.value.indexDigest).toBe(index.digest);
    const arm = await pullImage(ref(`${registry.host}/test/multi`), { store, platform: { os: 'linux', architecture: 'arm64' } });
    if (!arm.ok) throw new Error(arm.error.message);
    expect(arm.value.digest).toBe(index.images[1]!.manifestDigest);
    expect(arm.value.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    const none = await pullImage(ref(`${registry.host}/test/multi`), { store, platform: { os: 'linux', architecture: 's390x' } });
    expect(none.ok).toBe(false);
    if (!none.ok) {
      expect(none.error.reason).toBe('platform-not-found');
      expect(none.error.message).toBe(`docker://${registry.host}/test/multi:latest has no image for platform linux/s390x`);
      expect(none.error.hint).toBe('available: linux/amd64, linux/arm64/v8; choose one with --platform');
    }
  });

  it('reports a missing tag clearly', async () => {
    const store = await Store.open({ dir: cacheDir });
    const r = await pullImage(ref(`${registry.host}/library/busybox:nope`), { store });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.reason).toBe('registry-manifest-not-found');
      expect(r.error.message).toBe(
        `docker://${registry.host}/library/busybox:nope: not found (registry ${registry.host} has no manifest 'nope' in library/busybox)`,
      );
    }
  });

  it('a digest-pinned pull with everything in the store needs no network', async () => {
    const store = await Store.open({ dir: cacheDir });
    const first = await pullImage(ref(`${registry.host}/library/busybox`), { store });
    if (!first.ok) throw new Error(first.error.message);
    // A port nothing listens on: any request would fail.
    const pinned = ref(`${registry.host}/library/busybox@${first.value.digest}`);
    const offline = { ...pinned, apiHost: '127.0.0.1:9' };
    const r = await pullImage(offline, { store, clientOptions: { retry: { attempts: 1 } } });
    expect(r.ok).toBe(true);
  });

  it('shares one download between concurrent callers of the same digest', async () => {
    const store = await Store.open({ dir: cacheDir });
    const client = new RegistryClient();
    const starts: RegistryEvent[] = [];
    client.subscribe((e) => {
      if (e.type === 'blob-start') starts.push(e);
    });
    const layer = busybox.layers[0]!;
    const r = ref(`${registry.host}/library/busybox`);
    const results = await Promise.all([1, 2, 3].map(() => client.fetchBlob(r, layer, { store })));
    expect(results.every((x) => x.ok)).toBe(true);
    expect(starts.length).toBe(1);
    await client.close();
  });

  it('reads Docker v2 schema 2 manifests and manifest lists', async () => {
    const amd = buildImage([await tarLayer([{ name: 'd', content: 'docker amd64\n' }])], { docker: true });
    const arm = buildImage([await tarLayer([{ name: 'd', content: 'docker arm\n' }], { oci: false })], {
      docker: true,
      platform: { os: 'linux', architecture: 'arm', variant: 'v7' },
    });
    const list = buildIndex([amd, arm], { docker: true });
    await pushIndex(`${registry.host}/test/dockerlist:1`, list);
    const store = await Store.open({ dir: cacheDir });
    const r = await pullImage(ref(`${registry.host}/test/dockerlist:1`), { store, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.digest).toBe(arm.manifestDigest);
    expect(r.value.indexDigest).toBe(list.digest);
    expect(r.value.manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(r.value.layers[0]!.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
  });

  it('deletes a blob damaged in the store and fetches it again', async () => {
    const store = await Store.open({ dir: cacheDir });
    const layer = busybox.layers[0]!;
    expect((await pullImage(ref(`${registry.host}/library/busybox`), { store })).ok).toBe(true);
    await writeFile(store.blobPath(layer.digest), 'damaged');
    const r = await pullImage(ref(`${registry.host}/library/busybox`), { store });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.downloadedBytes).toBe(layer.size);
    expect(await store.blobs.verify(layer.digest)).toBe('valid');
  });
});
