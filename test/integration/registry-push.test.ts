/**
 * The registry client's upload path (src/registry: pushBlob, pushManifest, pushImage) against the
 * real docker-registry: HEAD checks, cross-repository mounts, monolithic and chunked uploads,
 * artifacts with their own artifactType and annotations, Basic and Bearer auth with push scope,
 * and, through the fault proxy, retries, resumed chunks and refusals.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/core/digest.js';
import { credentialsFromConfig } from '../../src/registry/credentials.js';
import { EMPTY_CONFIG, ociManifest } from '../../src/registry/oci-manifest.js';
import { pushImage } from '../../src/registry/push-image.js';
import { parseReference, type ImageReference } from '../../src/registry/reference.js';
import { RegistryClient, type BlobSource, type RegistryClientOptions } from '../../src/registry/registry-client.js';
import type { RegistryEvent } from '../../src/registry/registry-events.js';
import { Store } from '../../src/store/store.js';
import { startProxy, type ProxyAction, type ProxyRequestInfo, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const ARTIFACT_TYPE = 'application/vnd.example.test.v1';
const FAST = { attempts: 4, baseMs: 2, maxMs: 10 };

function ref(text: string): ImageReference {
  const r = parseReference(text);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

function bytesSource(bytes: Uint8Array): BlobSource {
  return { digest: sha256Digest(bytes), size: bytes.length, bytes };
}

async function fileSource(path: string, bytes: Uint8Array): Promise<BlobSource> {
  await writeFile(path, bytes);
  return { digest: sha256Digest(bytes), size: bytes.length, path };
}

function skopeoRaw(reference: string, extra: readonly string[] = []): string {
  return execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', ...extra, `docker://${reference}`], { encoding: 'utf8' });
}

let dir: string;
let proxy: TestProxy | undefined;
let client: RegistryClient | undefined;
const events: RegistryEvent[] = [];

function newClient(options: RegistryClientOptions = {}): RegistryClient {
  client = new RegistryClient({ retry: FAST, onEvent: (e) => events.push(e), ...options });
  return client;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orch-push-'));
  events.length = 0;
});
afterEach(async () => {
  await client?.close();
  client = undefined;
  await proxy?.stop();
  proxy = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('pushing to the real registry', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  async function through(decide: (i: ProxyRequestInfo) => ProxyAction): Promise<string> {
    proxy = await startProxy(registry.url, decide);
    return proxy.host;
  }

  it('pushes an artifact (artifactType, annotations, a file layer and a memory layer) that skopeo reads back byte for byte', async () => {
    const c = newClient();
    const small = new Uint8Array(Buffer.from('hello artifact\n'));
    const big = randomBytes(300_000);
    const layers = [
      { source: bytesSource(small), mediaType: 'application/vnd.example.small', annotations: { 'org.example.name': 'small' } },
      { source: await fileSource(join(dir, 'big.bin'), big), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
    ];
    const pushed = await pushImage(ref(`${registry.host}/team/art:v1`), {
      client: c,
      layers,
      artifactType: ARTIFACT_TYPE,
      annotations: { 'org.example.key': 'k1', 'org.example.a': 'first' },
    });
    if (!pushed.ok) throw new Error(pushed.error.message);
    expect(pushed.value.blobs.map((b) => b.how)).toEqual(['uploaded', 'uploaded', 'uploaded']);
    expect(pushed.value.bytesSent).toBe(2 + small.length + big.length);

    const raw = skopeoRaw(`${registry.host}/team/art:v1`);
    expect(raw).toBe(Buffer.from(pushed.value.manifest.bytes).toString('utf8'));
    expect(sha256Digest(raw)).toBe(pushed.value.digest);
    const json = JSON.parse(raw) as Record<string, unknown>;
    expect(json['artifactType']).toBe(ARTIFACT_TYPE);
    expect(json['config']).toEqual({ mediaType: EMPTY_CONFIG.mediaType, digest: EMPTY_CONFIG.digest, size: 2 });
    expect(Object.keys(json['annotations'] as object)).toEqual(['org.example.a', 'org.example.key']);

    // And our own client pulls it back, verified.
    const got = await c.getManifest(ref(`${registry.host}/team/art:v1`));
    if (!got.ok) throw new Error(got.error.message);
    if (got.value.manifest.kind !== 'manifest') throw new Error('not a manifest');
    expect(got.value.manifest.artifactType).toBe(ARTIFACT_TYPE);
    expect(got.value.manifest.annotations).toEqual({ 'org.example.a': 'first', 'org.example.key': 'k1' });
    const store = await Store.open({ dir: join(dir, 'cache') });
    const blob = await c.fetchBlob(ref(`${registry.host}/team/art:v1`), got.value.manifest.layers[1]!, { store });
    if (!blob.ok) throw new Error(blob.error.message);
    expect(Buffer.compare(await readFile(blob.value.path), big)).toBe(0);
  });

  it('uploads nothing twice: a second push finds every blob with HEAD, another repository mounts them', async () => {
    const layer = bytesSource(randomBytes(50_000));
    const c = newClient();
    const first = await pushImage(ref(`${registry.host}/team/once:a`), { client: c, layers: [{ source: layer, mediaType: 'application/octet-stream' }] });
    if (!first.ok) throw new Error(first.error.message);
    const host = await through(() => ({ kind: 'pass' }));
    const again = await pushImage(ref(`${host}/team/once:b`), { client: c, layers: [{ source: layer, mediaType: 'application/octet-stream' }] });
    if (!again.ok) throw new Error(again.error.message);
    expect(again.value.blobs.map((b) => b.how)).toEqual(['exists', 'exists']);
    expect(again.value.bytesSent).toBe(0);
    expect(again.value.digest).toBe(first.value.digest);
    expect(proxy!.requests.filter((r) => r.method === 'PUT' || r.method === 'PATCH').map((r) => r.path)).toEqual(['/v2/team/once/manifests/b']);

    const mounted = await pushImage(ref(`${host}/other/copy:v1`), {
      client: c,
      layers: [{ source: layer, mediaType: 'application/octet-stream' }],
      mountFrom: ['team/once'],
    });
    if (!mounted.ok) throw new Error(mounted.error.message);
    expect(mounted.value.blobs.map((b) => b.how)).toEqual(['mounted', 'mounted']);
    expect(mounted.value.bytesSent).toBe(0);
    expect(JSON.parse(skopeoRaw(`${registry.host}/other/copy:v1`))).toEqual(JSON.parse(Buffer.from(mounted.value.manifest.bytes).toString('utf8')));
  });

  it('uploads in PATCH chunks with Content-Range, and resumes a failed chunk where the registry says it stands', async () => {
    const bytes = randomBytes(200_000);
    const source = await fileSource(join(dir, 'chunked.bin'), bytes);
    const host = await through((i) => (i.method === 'PATCH' && i.count === 2 ? { kind: 'status', status: 503 } : { kind: 'pass' }));
    const c = newClient();
    const progress: number[] = [];
    const r = await c.pushBlob(ref(`${host}/team/chunks`), source, { chunkSize: 64 * 1024, onProgress: (n) => progress.push(n) });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.how).toBe('uploaded');
    const patches = proxy!.requests.filter((q) => q.method === 'PATCH');
    // 4 chunks, one of them sent twice; the resumed one starts where the registry stood.
    expect(patches.map((q) => q.headers['content-range'])).toEqual(['0-65535', '65536-131071', '65536-131071', '131072-196607', '196608-199999']);
    expect(proxy!.requests.filter((q) => q.method === 'GET' && q.path.includes('/blobs/uploads/'))).toHaveLength(1);
    expect(proxy!.requests.filter((q) => q.method === 'POST')).toHaveLength(1);
    expect(progress).toEqual([65_536, 131_072, 196_608, 200_000]);
    expect(events.filter((e) => e.type === 'retry').map((e) => (e as { reason: string }).reason)).toEqual(['HTTP 503']);
    const store = await Store.open({ dir: join(dir, 'cache') });
    const back = await c.fetchBlob(ref(`${registry.host}/team/chunks`), source, { store });
    if (!back.ok) throw new Error(back.error.message);
    expect(Buffer.compare(await readFile(back.value.path), bytes)).toBe(0);
  });

  it('retries a monolithic PUT that got a 500 with a new upload session', async () => {
    const source = bytesSource(randomBytes(10_000));
    let puts = 0;
    // Each session has its own path: count the uploads' PUTs here, not per path.
    const host = await through((i) => (i.method === 'PUT' && i.path.includes('/blobs/uploads/') && ++puts === 1 ? { kind: 'status', status: 500 } : { kind: 'pass' }));
    const c = newClient();
    const r = await c.pushBlob(ref(`${host}/team/mono`), source);
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value).toEqual({ digest: source.digest, size: source.size, how: 'uploaded', bytesSent: 20_000 });
    expect(proxy!.requests.filter((q) => q.method === 'POST')).toHaveLength(2);
    expect(events.some((e) => e.type === 'retry' && e.reason === 'HTTP 500')).toBe(true);
  });

  it('gives up with registry-unavailable when uploads keep failing, and pushes no manifest', async () => {
    const host = await through((i) => (i.method === 'POST' ? { kind: 'status', status: 500 } : { kind: 'pass' }));
    const c = newClient();
    const r = await pushImage(ref(`${host}/team/down:v1`), { client: c, layers: [{ source: bytesSource(randomBytes(1000)), mediaType: 'application/octet-stream' }] });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.reason).toBe('registry-unavailable');
    expect(r.error.message).toMatch(/^POST \/v2\/team\/down\/blobs\/uploads\/ failed on registry 127\.0\.0\.1:\d+: HTTP 500 \(after 4 attempts\)$/);
    expect(proxy!.requests.some((q) => q.path.includes('/manifests/'))).toBe(false);
  });

  it('refuses a source that does not match its digest or size before sending anything', async () => {
    const host = await through(() => ({ kind: 'pass' }));
    const c = newClient();
    const bytes = new Uint8Array(Buffer.from('real bytes'));
    const wrongDigest = await c.pushBlob(ref(`${host}/team/bad`), { digest: sha256Digest('other bytes'), size: bytes.length, bytes });
    expect(wrongDigest.ok ? undefined : wrongDigest.error.reason).toBe('digest-mismatch');
    const wrongSize = await c.pushBlob(ref(`${host}/team/bad`), { digest: sha256Digest(bytes), size: 3, bytes });
    expect(wrongSize.ok ? undefined : wrongSize.error.reason).toBe('blob-size-mismatch');
    const missing = await c.pushBlob(ref(`${host}/team/bad`), { digest: sha256Digest(bytes), size: bytes.length, path: join(dir, 'absent.bin') });
    expect(missing.ok ? undefined : missing.error.message).toBe(`cannot read the blob ${sha256Digest(bytes).slice(0, 19)} to push from ${join(dir, 'absent.bin')}: ENOENT`);
    expect(proxy!.requests).toEqual([]);
  });

  it('refuses a registry that answers with another digest than the one uploaded', async () => {
    const lie = `sha256:${'0'.repeat(64)}`;
    const host = await through((i) =>
      i.method === 'PUT' && i.path.includes('/blobs/uploads/') ? { kind: 'status', status: 201, headers: { 'docker-content-digest': lie } } : { kind: 'pass' },
    );
    const c = newClient();
    const r = await c.pushBlob(ref(`${host}/team/liar`), bytesSource(randomBytes(100)));
    expect(r.ok ? undefined : r.error.reason).toBe('digest-mismatch');
  });

  it('pushes a manifest by digest when the reference has no tag, and refuses one that does not hash to a named digest', async () => {
    const c = newClient();
    const config = await c.pushBlob(ref(`${registry.host}/team/bydigest`), { ...EMPTY_CONFIG, bytes: new Uint8Array(Buffer.from('{}')) });
    if (!config.ok) throw new Error(config.error.message);
    const m = ociManifest({ config: EMPTY_CONFIG, layers: [], artifactType: ARTIFACT_TYPE });
    const put = await c.pushManifest(ref(`${registry.host}/team/bydigest`), m.bytes, { mediaType: m.mediaType });
    if (!put.ok) throw new Error(put.error.message);
    expect(put.value.digest).toBe(m.digest);
    expect(skopeoRaw(`${registry.host}/team/bydigest@${m.digest}`)).toBe(Buffer.from(m.bytes).toString('utf8'));
    const wrong = await c.pushManifest(ref(`${registry.host}/team/bydigest@sha256:${'1'.repeat(64)}`), m.bytes, { mediaType: m.mediaType });
    expect(wrong.ok ? undefined : wrong.error.reason).toBe('manifest-digest-mismatch');
  });
});

describe('push with auth', () => {
  const USER = 'writer';
  const PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
  const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
  const expectNoSecrets = (texts: readonly string[], secrets: readonly string[]): void => {
    for (const t of texts) for (const s of secrets) expect(t).not.toContain(s);
  };

  it('Basic (htpasswd): no credentials is auth-required, with them the push lands; no secret in any result or event', async () => {
    const registry = await startRegistry({ htpasswd: { user: USER, password: PASSWORD } });
    try {
      const layers = [{ source: bytesSource(randomBytes(5000)), mediaType: 'application/octet-stream' }];
      const anonymous = await pushImage(ref(`${registry.host}/team/private:v1`), { client: newClient(), layers });
      expect(anonymous.ok ? undefined : anonymous.error.reason).toBe('auth-required');
      await client?.close();
      const c = newClient({ credentials: credentialsFromConfig({ auths: { [registry.host]: { auth: BASIC } } }) });
      const pushed = await pushImage(ref(`${registry.host}/team/private:v1`), { client: c, layers, chunkSize: 2000 });
      if (!pushed.ok) throw new Error(pushed.error.message);
      expect(skopeoRaw(`${registry.host}/team/private:v1`, ['--creds', `${USER}:${PASSWORD}`])).toBe(Buffer.from(pushed.value.manifest.bytes).toString('utf8'));
      const wrong = newClient({ credentials: credentialsFromConfig({ auths: { [registry.host]: { username: USER, password: `x${PASSWORD}` } } }) });
      const refused = await pushImage(ref(`${registry.host}/team/private:v2`), { client: wrong, layers });
      expect(refused.ok ? undefined : refused.error.reason).toBe('auth-failed');
      expectNoSecrets([JSON.stringify(anonymous), JSON.stringify(pushed), JSON.stringify(refused), JSON.stringify(events)], [PASSWORD, BASIC]);
    } finally {
      await registry.stop();
    }
  });

  it('Bearer: one token with push scope (and pull on the repository mounted from), reused for every request', async () => {
    const registry = await startRegistry();
    const issued = new Set<string>();
    const scopes: string[][] = [];
    try {
      proxy = await startProxy(registry.url, (i) => {
        if (i.path === '/token') {
          return {
            kind: 'respond',
            handle: (req, res) => {
              scopes.push(new URL(req.url ?? '/', 'http://x').searchParams.getAll('scope'));
              if (req.headers['authorization'] !== `Basic ${BASIC}`) {
                res.writeHead(401).end('{}');
                return;
              }
              const token = `tok-${randomBytes(12).toString('hex')}`;
              issued.add(token);
              res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
            },
          };
        }
        const auth = i.headers['authorization'];
        if (typeof auth === 'string' && auth.startsWith('Bearer ') && issued.has(auth.slice(7))) return { kind: 'pass' };
        return { kind: 'status', status: 401, headers: { 'www-authenticate': `Bearer realm="http://${proxy!.host}/token",service="test"` } };
      });
      const c = newClient({ credentials: credentialsFromConfig({ auths: { [proxy.host]: { auth: BASIC } } }) });
      const layers = [{ source: bytesSource(randomBytes(3000)), mediaType: 'application/octet-stream' }];
      const first = await pushImage(ref(`${proxy.host}/team/src:v1`), { client: c, layers, concurrency: 1 });
      if (!first.ok) throw new Error(first.error.message);
      expect(scopes).toEqual([['repository:team/src:pull,push']]);
      const second = await pushImage(ref(`${proxy.host}/team/dst:v1`), { client: c, layers, mountFrom: ['team/src'], concurrency: 1 });
      if (!second.ok) throw new Error(second.error.message);
      expect(second.value.blobs.map((b) => b.how)).toEqual(['mounted', 'mounted']);
      expect(scopes.slice(1)).toEqual([['repository:team/dst:pull,push'], ['repository:team/dst:pull,push', 'repository:team/src:pull']]);
      expectNoSecrets([JSON.stringify(first), JSON.stringify(second), JSON.stringify(events)], [PASSWORD, BASIC, ...issued]);
    } finally {
      await proxy?.stop();
      proxy = undefined;
      await registry.stop();
    }
  });
});
