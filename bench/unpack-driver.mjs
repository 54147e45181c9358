// Unpacks every layer of an OCI layout (tag `latest`) with orchestrator's unpacker
// (dist/layers/unpack-layer.js), all layers at once as a pull does, each into OUT/layers/<diffid>.
// Usage: node bench/unpack-driver.mjs OCI_DIR OUT [--no-durable]   (durable, i.e. syncfs before
// the rename, is the product's default).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { unpackLayer } from '../dist/layers/unpack-layer.js';

const [dir, out, flag] = process.argv.slice(2);
const blob = (d) => join(dir, 'blobs', 'sha256', d.slice(7));
const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
const manifest = JSON.parse(readFileSync(blob(index.manifests[0].digest), 'utf8'));
const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8'));
const results = await Promise.all(
  manifest.layers.map((l, i) =>
    unpackLayer({
      source: blob(l.digest),
      mediaType: l.mediaType,
      expectedDiffId: config.rootfs.diff_ids[i],
      layerDigest: l.digest,
      destination: join(out, 'layers', config.rootfs.diff_ids[i].slice(7)),
      tmpDir: join(out, 'tmp'),
      durable: flag !== '--no-durable',
    }),
  ),
);
for (const r of results) {
  if (!r.ok) {
    console.error(r.error.message);
    process.exit(1);
  }
}
