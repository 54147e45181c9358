// What the bench image makers share: a tar in memory, the OCI config and manifest over a list of
// gzip layers, an OCI layout on disk (tag `latest`), and a plain-HTTP push to the bench's local
// registry (orchestrator itself never pushes). Used by push-base-image.mjs, push-bench-image.mjs and make-tree-layout.mjs.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tar from 'tar-stream';

export const sha = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

/** A tar of `entries` ([{ h: tar-stream header, data? }]) as one Buffer. */
export async function tarBuffer(entries) {
  const pack = tar.pack();
  const chunks = [];
  const done = new Promise((resolve, reject) => {
    pack.on('data', (c) => chunks.push(c));
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const e of entries) await new Promise((resolve, reject) => pack.entry(e.h, e.data ?? '', (err) => (err ? reject(err) : resolve())));
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * The config and manifest of an image of `layers` ([{ digest, size, diffId }] of gzip blobs);
 * `config` adds to the image config (Env, Cmd, history).
 */
export function imageParts(layers, config = { Cmd: ['/bin/sh'] }, extra = {}) {
  const configBlob = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) }, ...extra }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(configBlob), size: configBlob.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    }),
  );
  return { config: configBlob, manifest };
}

/** Writes an OCI layout in `dir` (the blobs given, plus config and manifest) tagged `latest`. */
export function writeLayout(dir, blobs, parts) {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of [...blobs, parts.config, parts.manifest]) writeFileSync(join(dir, 'blobs', 'sha256', sha(b).slice(7)), b);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const desc = { mediaType: MANIFEST_TYPE, digest: sha(parts.manifest), size: parts.manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } };
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [desc] }));
}

/** One request to the local registry; throws unless it answers with one of `expect`. */
async function call(url, method, expect, init = {}) {
  const res = await fetch(url, { method, ...init });
  const text = await res.text();
  if (!expect.includes(res.status)) throw new Error(`${method} ${url}: HTTP ${res.status} ${text}`);
  return res;
}

/** Pushes the blobs, the config and the manifest to HOST:PORT/REPO:TAG; returns the manifest digest. */
export async function pushImage(host, name, blobs, parts) {
  const [repo, tag = 'latest'] = name.split(':');
  const base = `http://${host}/v2/${repo}`;
  for (const b of [...blobs, parts.config]) {
    const digest = sha(b);
    if ((await call(`${base}/blobs/${digest}`, 'HEAD', [200, 404])).status === 200) continue;
    const started = await call(`${base}/blobs/uploads/`, 'POST', [202]);
    const url = new URL(started.headers.get('location') ?? '', `http://${host}`);
    url.searchParams.set('digest', digest);
    await call(url, 'PUT', [201], { headers: { 'content-type': 'application/octet-stream' }, body: b });
  }
  await call(`${base}/manifests/${tag}`, 'PUT', [200, 201], { headers: { 'content-type': MANIFEST_TYPE }, body: parts.manifest });
  return sha(parts.manifest);
}
