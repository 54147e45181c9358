// What the bench image makers share: a tar in memory, the OCI config and manifest over a list of
// gzip layers, an OCI layout on disk (tag `latest`), and a push through orchestrator's registry
// client. Used by push-base-image.mjs, push-bench-image.mjs and make-tree-layout.mjs.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tar from 'tar-stream';
import { parseReference } from '../dist/registry/reference.js';
import { RegistryClient } from '../dist/registry/registry-client.js';

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

/** Pushes the blobs, the config and the manifest to HOST:PORT/REPO:TAG; returns the manifest digest. */
export async function pushImage(host, name, blobs, parts) {
  const ref = parseReference(`docker://${host}/${name}`);
  if (!ref.ok) throw new Error(ref.error.message);
  const client = new RegistryClient();
  for (const b of [...blobs, parts.config]) {
    const r = await client.pushBlob(ref.value, b);
    if (!r.ok) throw new Error(r.error.message);
  }
  const m = await client.pushManifest(ref.value, parts.manifest, MANIFEST_TYPE);
  if (!m.ok) throw new Error(m.error.message);
  await client.close();
  return m.value;
}
