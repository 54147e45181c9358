// Runs only orchestrator's squashfs export (dist/image/export-squashfs.js) on a folder and times it
// inside the process, so Node's start-up is left out: the default writer (ours, native/squashfs) with
// no block cache, a cold write. Usage: node bench/export-driver.mjs TREE OUT.simg
// Prints the export's wall time in ms.
import { exportSquashfs } from '../dist/image/export-squashfs.js';

const [source, output] = process.argv.slice(2);
const t0 = process.hrtime.bigint();
const r = await exportSquashfs({ source, output });
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
if (!r.ok) {
  console.error(r.error.message);
  process.exit(1);
}
console.log(ms.toFixed(1));
