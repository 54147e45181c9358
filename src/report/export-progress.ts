import type { BuildEvent } from '../builder/build-events.js';
import { formatBytes } from './format-bytes.js';

type ExportProgress = Extract<BuildEvent, { type: 'export-progress' }>;
type ExportDone = Extract<BuildEvent, { type: 'export-done' }>;

/** `exporting: 45% of 1.20 GiB, 120/900 files (30.0 MiB compressed, 512 MiB reused)` */
export function exportProgressText(e: ExportProgress): string {
  if (e.phase === 'scan' || e.phase === 'hash') return `exporting: reading the tree (${e.phase === 'scan' ? 'listing' : `${e.files}/${e.filesTotal} files`})`;
  if (e.phase === 'tables' || e.phase === 'done') return 'exporting: writing the tables';
  const pct = e.bytesTotal > 0 ? Math.floor((100 * e.bytes) / e.bytesTotal) : 100;
  return `exporting: ${pct}% of ${formatBytes(e.bytesTotal)}, ${e.files}/${e.filesTotal} files (${formatBytes(e.compressedBytes)} compressed, ${formatBytes(e.reusedBytes)} reused)`;
}

/** ` (12.0 MiB compressed, 110 MiB reused from the block cache)`, or nothing for other writers. */
export function exportReuseText(e: ExportDone): string {
  return e.squashfs ? ` (${formatBytes(e.squashfs.compressedBytes)} compressed, ${formatBytes(e.squashfs.reusedBytes)} reused from the block cache)` : '';
}
