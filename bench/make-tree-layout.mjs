// Writes an OCI layout (tag `latest`) with one gzip layer per host folder given: a tree of many
// real files, as a distribution image has. Usage: node bench/make-tree-layout.mjs OUT_DIR /abs/dir...
// Prints the manifest digest, the compressed size, the layer count and the file count.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { imageParts, sha, writeLayout } from './image-parts.mjs';

const [out, ...dirs] = process.argv.slice(2);
if (!out || dirs.length === 0) {
  console.error('usage: node bench/make-tree-layout.mjs OUT_DIR /abs/dir...');
  process.exit(2);
}
const blobs = join(out, 'blobs', 'sha256');
mkdirSync(blobs, { recursive: true });

let files = 0;
async function layerOf(dir) {
  const tar = spawn('tar', ['-C', '/', '--sort=name', '--numeric-owner', '-cf', '-', dir.replace(/^\/+/, '')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  const gz = createGzip({ level: 6 });
  const tmp = join(blobs, `tmp-${process.pid}`);
  const sink = createWriteStream(tmp);
  let size = 0;
  tar.stdout.on('data', (c) => diff.update(c));
  gz.on('data', (c) => {
    blob.update(c);
    size += c.length;
  });
  tar.stdout.pipe(gz).pipe(sink);
  await new Promise((resolve, reject) => {
    sink.on('finish', resolve);
    sink.on('error', reject);
    tar.on('exit', (code) => code !== 0 && reject(new Error(`tar exited with ${code}`)));
  });
  const digest = `sha256:${blob.digest('hex')}`;
  renameSync(tmp, join(blobs, digest.slice(7)));
  return { digest, size, diffId: `sha256:${diff.digest('hex')}` };
}
const count = spawn('find', dirs, { stdio: ['ignore', 'pipe', 'inherit'] });
count.stdout.on('data', (c) => (files += c.toString().split('\n').length - 1));
await new Promise((r) => count.on('exit', r));

const layers = [];
for (const d of dirs) layers.push(await layerOf(d));
const parts = imageParts(layers);
writeLayout(out, [], parts);
console.log(`${sha(parts.manifest)} ${layers.reduce((s, l) => s + l.size, 0)} ${layers.length} ${files}`);
