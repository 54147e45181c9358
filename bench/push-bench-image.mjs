// Builds a multi-layer image (random and compressible data) and pushes it to a local
// registry (bench/image-parts.mjs), or writes it as an OCI layout (tag `latest`) when the first argument is oci:DIR.
// Usage: node bench/push-bench-image.mjs (HOST:PORT REPO:TAG | oci:DIR -) [TOTAL_MB]
// Prints the image's manifest digest, its compressed size and its layer count on stdout.
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { imageParts, pushImage, sha, tarBuffer, writeLayout } from './image-parts.mjs';

const [host, name, totalArg] = process.argv.slice(2);
if (!host || !name) {
  console.error('usage: node bench/push-bench-image.mjs HOST:PORT REPO:TAG [TOTAL_MB]');
  process.exit(2);
}
const totalMb = Number(totalArg ?? 60);

const tarOf = (files) => tarBuffer(files.map(([fname, data]) => ({ h: { name: fname, size: data.length, mode: 0o644, mtime: new Date(0) }, data })));

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
  return { gz, digest: sha(gz), size: gz.length, diffId: sha(t) };
});
const parts = imageParts(built);
const size = built.reduce((s, l) => s + l.gz.length, 0) + parts.config.length;
if (host.startsWith('oci:')) {
  writeLayout(host.slice(4), built.map((l) => l.gz), parts);
  console.log(`${sha(parts.manifest)} ${size} ${built.length}`);
} else {
  console.log(`${await pushImage(host, name, built.map((l) => l.gz), parts)} ${size} ${built.length}`);
}
