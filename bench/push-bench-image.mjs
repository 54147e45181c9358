// Builds a multi-layer image (random and compressible data) and pushes it with orchestrator's
// registry client, or writes it as an OCI layout (tag `latest`) when the first argument is oci:DIR.
// Usage: node bench/push-bench-image.mjs (HOST:PORT REPO:TAG | oci:DIR -) [TOTAL_MB]
// Prints the image's manifest digest, its compressed size and its layer count on stdout.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { parseReference } from '../dist/registry/reference.js';
import { RegistryClient } from '../dist/registry/registry-client.js';

const [host, name, totalArg] = process.argv.slice(2);
if (!host || !name) {
  console.error('usage: node bench/push-bench-image.mjs HOST:PORT REPO:TAG [TOTAL_MB]');
  process.exit(2);
}
const totalMb = Number(totalArg ?? 60);
const sha = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function tarOf(files) {
  const pack = tar.pack();
  const chunks = [];
  const done = new Promise((resolve, reject) => {
    pack.on('data', (c) => chunks.push(c));
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const [fname, data] of files) {
    await new Promise((resolve, reject) => pack.entry({ name: fname, size: data.length, mode: 0o644, mtime: new Date(0) }, data, (e) => (e ? reject(e) : resolve())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function compressible(bytes, seed) {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', String(seed)];
  const parts = [];
  let n = 0;
  let i = 0;
  while (n < bytes) {
    const w = `${words[(i * 7 + seed) % words.length]} ${i}\n`;
    parts.push(w);
    n += w.length;
    i++;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

// 2/3 of the compressed size from random data in 4 layers, the rest from text that compresses ~5x.
const MB = 1024 * 1024;
const layers = [];
const randomLayers = 4;
const randomMb = Math.ceil((totalMb * 2) / 3 / randomLayers);
for (let i = 0; i < randomLayers; i++) {
  const t = await tarOf([[`data/random-${i}.bin`, randomBytes(randomMb * MB)]]);
  layers.push(t);
}
const textMb = Math.ceil(((totalMb / 3) * 5) / 2);
for (let i = 0; i < 2; i++) layers.push(await tarOf([[`share/text-${i}.txt`, compressible(textMb * MB, i)]]));

const built = layers.map((t) => {
  const gz = gzipSync(t, { level: 1 });
  return { gz, digest: sha(gz), diffId: sha(t) };
});
const config = Buffer.from(
  JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: built.map((l) => l.diffId) } }),
);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: built.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.gz.length })),
  }),
);
if (host.startsWith('oci:')) {
  const dir = host.slice(4);
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of [...built.map((l) => l.gz), config, manifest]) writeFileSync(join(dir, 'blobs', 'sha256', sha(b).slice(7)), b);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const desc = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } };
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [desc] }));
  const size = built.reduce((s, l) => s + l.gz.length, 0) + config.length;
  console.log(`${sha(manifest)} ${size} ${built.length}`);
  process.exit(0);
}
const ref = parseReference(`docker://${host}/${name}`);
if (!ref.ok) throw new Error(ref.error.message);
const client = new RegistryClient();
for (const l of built) {
  const r = await client.pushBlob(ref.value, l.gz);
  if (!r.ok) throw new Error(r.error.message);
}
for (const b of [config]) {
  const r = await client.pushBlob(ref.value, b);
  if (!r.ok) throw new Error(r.error.message);
}
const m = await client.pushManifest(ref.value, manifest, 'application/vnd.oci.image.manifest.v1+json');
if (!m.ok) throw new Error(m.error.message);
await client.close();
const size = built.reduce((s, l) => s + l.gz.length, 0) + config.length;
console.log(`${m.value} ${size} ${built.length}`);
