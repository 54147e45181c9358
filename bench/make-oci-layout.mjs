// Makes an OCI image layout (for `umoci unpack`) from gzipped layer blobs, bottom layer first:
//   node bench/make-oci-layout.mjs LAYOUT_DIR TAG layer1.tar.gz layer2.tar.gz ...
// Writes blobs/sha256/*, a config with rootfs.diff_ids, a manifest, index.json and oci-layout.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

const [layout, tag, ...layers] = process.argv.slice(2);
if (!layout || !tag || layers.length === 0) {
  console.error('usage: make-oci-layout.mjs LAYOUT_DIR TAG LAYER.tar.gz...');
  process.exit(2);
}
const blobs = join(layout, 'blobs', 'sha256');
mkdirSync(blobs, { recursive: true });
const sha = (b) => createHash('sha256').update(b).digest('hex');
const put = (bytes) => {
  const hex = sha(bytes);
  writeFileSync(join(blobs, hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
};
const layerDescriptors = [];
const diffIds = [];
for (const path of layers) {
  const blob = readFileSync(path);
  const hex = sha(blob);
  copyFileSync(path, join(blobs, hex));
  layerDescriptors.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${hex}`, size: blob.length });
  diffIds.push(`sha256:${sha(gunzipSync(blob))}`);
}
const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIds } })));
const manifest = put(
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: layerDescriptors })),
);
writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
writeFileSync(
  join(layout, 'index.json'),
  JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
);
writeFileSync(join(layout, 'diff-ids.txt'), diffIds.join('\n') + '\n');
