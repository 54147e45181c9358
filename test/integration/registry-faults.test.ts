import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/core/digest.js';
import { pullImage } from '../../src/registry/pull-image.js';
import { parseReference, type ImageReference } from '../../src/registry/reference.js';
import { RegistryClient } from '../../src/registry/registry-client.js';
import type { RegistryEvent } from '../../src/registry/registry-events.js';
import { Store } from '../../src/store/store.js';
import { busyboxImage, pushImage, type BuiltImage } from '../helpers/images.js';
import { startProxy, type ProxyAction, type ProxyRequestInfo, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
let image: BuiltImage;
let layer: Digest;
let cacheDir: string;
let proxy: TestProxy | undefined;

function ref(text: string): ImageReference {
  const r = parseReference(text);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

beforeAll(async () => {
  registry = await startRegistry();
  image = await busyboxImage();
  layer = image.layers[0]!.digest;
  await pushImage(`${registry.host}/library/busybox:latest`, image);
});
afterAll(async () => {
  await registry?.stop();
});
beforeEach(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'orch-faults-'));
});
afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
  await rm(cacheDir, { recursive: true, force: true });
});

const isLayer = (i: ProxyRequestInfo): boolean => i.method === 'GET' && i.path.endsWith(`/blobs/${layer}`);
const isManifest = (i: ProxyRequestInfo): boolean => i.method === 'GET' && i.path.includes('/manifests/');

async function pullThrough(decide: (i: ProxyRequestInfo) => ProxyAction, options: { attempts?: number; signal?: AbortSignal; onEvent?: (e: RegistryEvent) => void } = {}) {
  proxy = await startProxy(registry.url, decide);
  const store = await Store.open({ dir: cacheDir });
  const events: RegistryEvent[] = [];
  const result = await pullImage(ref(`${proxy.host}/library/busybox:latest`), {
    store,
    clientOptions: { retry: { attempts: options.attempts ?? 4, baseMs: 5, maxMs: 20 } },
    onEvent: (e) => {
      events.push(e);
      options.onEvent?.(e);
    },
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { store, events, result, proxy };
}

/** Every file under blobs/ verifies, and tmp/ is empty. */
async function expectCleanStore(store: Store): Promise<string[]> {
  const names = await readdir(store.blobs.dir);
  for (const n of names) expect(await store.blobs.verify(`sha256:${n}` as Digest)).toBe('valid');
  expect(await readdir(store.tmpDir)).toEqual([]);
  return names;
}

describe('registry faults', () => {
  it('retries 500s and succeeds', async () => {
    const { result, events, store } = await pullThrough((i) => (isManifest(i) && i.count <= 2) || (isLayer(i) && i.count === 1) ? { kind: 'status', status: 500 } : { kind: 'pass' });
    expect(result.ok).toBe(true);
    const retries = events.filter((e) => e.type === 'retry');
    expect(retries.map((e) => e.type === 'retry' && e.reason)).toEqual(['HTTP 500', 'HTTP 500', 'HTTP 500']);
    expect(await store.blobs.verify(layer)).toBe('valid');
  });

  it('honours Retry-After on 429', async () => {
    const { result, events } = await pullThrough((i) => (isLayer(i) && i.count === 1 ? { kind: 'status', status: 429, headers: { 'retry-after': '1' } } : { kind: 'pass' }));
    expect(result.ok).toBe(true);
    expect(events.filter((e) => e.type === 'retry')).toEqual([
      { type: 'retry', what: `GET /v2/library/busybox/blobs/${layer}`, attempt: 1, delayMs: 1000, reason: 'HTTP 429' },
    ]);
  });

  it('resumes with Range after a connection reset halfway through a blob', async () => {
    const half = Math.floor(image.layers[0]!.size / 2);
    const { result, events, store, proxy: p } = await pullThrough((i) => (isLayer(i) && i.count === 1 ? { kind: 'reset-after', bytes: half } : { kind: 'pass' }));
    if (!result.ok) throw new Error(result.error.message);
    const resume = events.find((e) => e.type === 'blob-resume');
    expect(resume).toBeDefined();
    expect(resume?.type === 'blob-resume' && resume.offset).toBeGreaterThan(0);
    const second = p.requests.filter(isLayer)[1];
    expect(second?.headers['range']).toMatch(/^bytes=\d+-$/);
    expect(await store.blobs.verify(layer)).toBe('valid');
    await expectCleanStore(store);
  });

  it('fails clearly on wrong bytes and keeps no bad blob', async () => {
    const { result, store } = await pullThrough((i) =>
      isLayer(i) ? { kind: 'transform', body: (b) => Buffer.from(b.map((x, k) => (k === 100 ? x ^ 0xff : x))) } : { kind: 'pass' },
    );
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.reason).toBe('digest-mismatch');
      expect(result.error.message).toMatch(new RegExp(`^blob ${layer.slice(0, 19)} failed verification: its content hashes to sha256:[0-9a-f]{12}$`));
    }
    expect(await store.blobs.has(layer)).toBe(false);
    await expectCleanStore(store);
  });

  it('recovers when wrong bytes are served once', async () => {
    const { result, events, store } = await pullThrough((i) =>
      isLayer(i) && i.count === 1 ? { kind: 'transform', body: (b) => Buffer.from(b.map((x, k) => (k === 5 ? x ^ 1 : x))) } : { kind: 'pass' },
    );
    expect(result.ok).toBe(true);
    expect(events.some((e) => e.type === 'retry' && e.reason === 'digest mismatch')).toBe(true);
    expect(await store.blobs.verify(layer)).toBe('valid');
  });

  it('rejects a manifest whose digest does not match Docker-Content-Digest', async () => {
    const { result, store } = await pullThrough((i) => (isManifest(i) ? { kind: 'transform', body: (b) => Buffer.concat([b, Buffer.from('\n')]) } : { kind: 'pass' }));
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.reason).toBe('manifest-digest-mismatch');
      expect(result.error.message).toMatch(
        new RegExp(`^docker://${proxy!.host}/library/busybox:latest: the manifest served hashes to sha256:[0-9a-f]{12}, but the registry says ${image.manifestDigest.slice(0, 19)}$`),
      );
    }
    expect(await expectCleanStore(store)).toEqual([]);
  });

  it('rejects a manifest that does not hash to the requested digest', async () => {
    proxy = await startProxy(registry.url, (i) => (isManifest(i) ? { kind: 'transform', body: (b) => Buffer.concat([b, Buffer.from(' ')]) } : { kind: 'pass' }));
    const store = await Store.open({ dir: cacheDir });
    const client = new RegistryClient({ retry: { baseMs: 1 } });
    // The proxy keeps Docker-Content-Digest; the requested digest is checked first.
    const r = await client.getManifest(ref(`${proxy.host}/library/busybox@${image.manifestDigest}`), { store });
    await client.close();
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.reason).toBe('manifest-digest-mismatch');
      expect(r.error.message).toContain(`not the requested ${image.manifestDigest.slice(0, 19)}`);
    }
    expect(await expectCleanStore(store)).toEqual([]);
  });

  it('gives up after the attempts with a clear error', async () => {
    const { result, store } = await pullThrough((i) => (isLayer(i) ? { kind: 'status', status: 503 } : { kind: 'pass' }), { attempts: 3 });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.reason).toBe('registry-unavailable');
      expect(result.error.message).toBe(`GET /v2/library/busybox/blobs/${layer} failed on registry ${proxy!.host}: HTTP 503 (after 3 attempts)`);
    }
    expect(await store.blobs.has(layer)).toBe(false);
    await expectCleanStore(store);
  });

  it('leaves no partial blob when aborted mid-download, and the next pull completes', async () => {
    const controller = new AbortController();
    const { result, store } = await pullThrough((i) => (isLayer(i) ? { kind: 'stall-after', bytes: 300_000 } : { kind: 'pass' }), {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'blob-progress' && e.digest === layer && e.bytes > 0) controller.abort(new Error('test abort'));
      },
    });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.reason).toBe('interrupted');
    expect(await store.blobs.has(layer)).toBe(false);
    await expectCleanStore(store);
    await proxy?.stop();
    proxy = undefined;
    const again = await pullImage(ref(`${registry.host}/library/busybox:latest`), { store });
    expect(again.ok).toBe(true);
    expect(await store.blobs.verify(layer)).toBe('valid');
  });

  it('follows a redirect of a blob to another origin', async () => {
    const { result, store, proxy: p } = await pullThrough((i) =>
      isLayer(i) ? { kind: 'status', status: 307, headers: { location: `${registry.url}${i.path}` } } : { kind: 'pass' },
    );
    if (!result.ok) throw new Error(result.error.message);
    expect(p.requests.filter(isLayer).length).toBe(1);
    expect(await store.blobs.verify(layer)).toBe('valid');
  });
});
