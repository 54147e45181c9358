// Unpacks gzipped layer blobs with orchestrator's unpacker (the built dist/), one after the other:
//   node bench/unpack-orchestrator.mjs STORE_DIR DURABLE(0|1) layer1.tar.gz ...
import { unpackLayer } from '../dist/layers/unpack-layer.js';
import { join } from 'node:path';

const [store, durable, ...layers] = process.argv.slice(2);
let i = 0;
for (const source of layers) {
  const r = await unpackLayer({
    source,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    destination: join(store, 'layers', String(i++)),
    tmpDir: join(store, 'tmp'),
    durable: durable === '1',
  });
  if (!r.ok) {
    console.error(r.error.message);
    process.exit(1);
  }
}
