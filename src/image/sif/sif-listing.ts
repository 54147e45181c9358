import type { SifImage, SifObject } from './read-sif.js';
import { partitionOf, signatureOf } from './read-sif.js';
import {
  DATA_CRYPTO_MESSAGE,
  DATA_PARTITION,
  DATA_SBOM,
  DATA_SIGNATURE,
  GO_ZERO_TIME,
  dataTypeName,
  formatTypeName,
  fsTypeName,
  messageTypeName,
  partTypeName,
  sbomFormatName,
} from './sif-format.js';

const NIL_UUID = '00000000-0000-0000-0000-000000000000';
const RULE = '-'.repeat(78);

/** Go's `%-Ns`: pads on the right, never cuts. */
function left(text: string, width: number): string {
  return text.padEnd(width, ' ');
}

/** siftool's sizes: bytes under 1 KiB, else the nearest whole KiB, MiB, ... ("27 KiB"). */
export function readableSize(size: number): string {
  if (size > -1024 && size < 1024) return `${size} B`;
  const units = 'KMGTPE';
  let div = 1024;
  let exp = 0;
  for (let n = Math.trunc(size / 1024); n <= -1024 || n >= 1024; n = Math.trunc(n / 1024)) {
    div *= 1024;
    exp++;
  }
  const q = size / div;
  // Go's math.Round: halves away from zero.
  const rounded = Math.sign(q) * Math.round(Math.abs(q));
  return `${rounded} ${units[exp]}iB`;
}

/** Go's `time.Time.UTC().String()` for whole seconds: "2020-05-22 19:30:59 +0000 UTC". */
export function goTime(seconds: bigint): string {
  const iso = new Date(Number(seconds) * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000 UTC`;
}

/** The header's lines as `siftool header` prints them (label column as wide as the widest label + 1). */
export function formatSifHeader(image: SifImage): string {
  const h = image.header;
  const rows: [string, string][] = [];
  if (h.launchScript !== '') rows.push(['Launch Script:', h.launchScript.replace(/\n$/, '')]);
  rows.push(['Version:', h.version]);
  if (h.arch !== 'unknown') rows.push(['Primary Architecture:', h.arch]);
  if (h.id !== NIL_UUID) rows.push(['ID:', h.id]);
  if (h.createdAt !== GO_ZERO_TIME) rows.push(['Created At:', goTime(h.createdAt)]);
  if (h.modifiedAt !== GO_ZERO_TIME) rows.push(['Modified At:', goTime(h.modifiedAt)]);
  rows.push(
    ['Descriptors Free:', String(h.descriptorsFree)],
    ['Descriptors Total:', String(h.descriptorsTotal)],
    ['Descriptors Offset:', String(h.descriptorsOffset)],
    ['Descriptors Size:', readableSize(h.descriptorsSize)],
    ['Data Offset:', String(h.dataOffset)],
    ['Data Size:', readableSize(h.dataSize)],
  );
  const width = Math.max(...rows.map(([label]) => label.length)) + 1;
  return rows.map(([label, value]) => `${left(label, width)}${value}\n`).join('');
}

/** What siftool prints in the TYPE column ("FS (Squashfs/*System/amd64)", "Signature (SHA-256)"). */
export function objectTypeText(o: SifObject): string | undefined {
  const name = dataTypeName(o.dataType);
  switch (o.dataType) {
    case DATA_PARTITION: {
      const p = partitionOf(o)!;
      return `${name} (${fsTypeName(p.fsType)}/${partTypeName(p.partType)}/${p.arch})`;
    }
    case DATA_SIGNATURE: {
      const hash = signatureOf(o)!.hash;
      // siftool prints nothing (not even the line's end) for a hash type it does not know.
      return hash === undefined ? undefined : `${name} (${hash.name})`;
    }
    case DATA_CRYPTO_MESSAGE:
      return `${name} (${formatTypeName(o.extra.readInt32LE(0))}/${messageTypeName(o.extra.readInt32LE(4))})`;
    case DATA_SBOM:
      return `${name} (${sbomFormatName(o.extra.readInt32LE(0))})`;
    default:
      return name;
  }
}

/** The descriptor table as `siftool list` prints it. */
export function formatSifList(image: SifImage): string {
  const lines = [`${RULE}\n`, `${left('ID', 4)} ${left('|GROUP', 8)} ${left('|LINK', 8)} ${left('|SIF POSITION (start-end)', 26)} |TYPE\n`, `${RULE}\n`];
  for (const o of image.objects) {
    const group = o.group === 0 ? left('|NONE', 8) : left(`|${o.group}`, 8);
    const link = o.link === 0 ? left('|NONE', 8) : o.linkIsGroup ? `|${left(String(o.link), 3)} (G)` : left(`|${o.link}`, 8);
    const position = left(`|${o.offset}-${o.offset + o.size} `, 26);
    const type = objectTypeText(o);
    lines.push(`${left(String(o.id), 4)} ${group} ${link} ${position} ${type === undefined ? '' : `|${type}\n`}`);
  }
  return lines.join('');
}

/** `sif header --json`: the header's fields, times as ISO strings (null for none). */
export function sifHeaderJson(image: SifImage): Record<string, unknown> {
  const h = image.header;
  const time = (t: bigint): string | null => (t === GO_ZERO_TIME ? null : new Date(Number(t) * 1000).toISOString());
  return {
    launchScript: h.launchScript,
    version: h.version,
    primaryArch: h.arch,
    id: h.id,
    createdAt: time(h.createdAt),
    modifiedAt: time(h.modifiedAt),
    descriptorsFree: h.descriptorsFree,
    descriptorsTotal: h.descriptorsTotal,
    descriptorsOffset: h.descriptorsOffset,
    descriptorsSize: h.descriptorsSize,
    dataOffset: h.dataOffset,
    dataSize: h.dataSize,
  };
}

/** `sif list --json`: one entry per object, with its type's metadata. */
export function sifListJson(image: SifImage): Record<string, unknown>[] {
  return image.objects.map((o) => {
    const entry: Record<string, unknown> = {
      id: o.id,
      group: o.group === 0 ? null : o.group,
      link: o.link === 0 ? null : o.linkIsGroup ? { group: o.link } : { object: o.link },
      offset: o.offset,
      size: o.size,
      type: dataTypeName(o.dataType),
      name: o.name,
    };
    const p = partitionOf(o);
    if (p) Object.assign(entry, { fsType: fsTypeName(p.fsType), partType: partTypeName(p.partType), arch: p.arch });
    const s = signatureOf(o);
    if (s) Object.assign(entry, { hashType: s.hash?.name ?? null, entity: s.fingerprint?.toString('hex').toUpperCase() ?? null });
    return entry;
  });
}
