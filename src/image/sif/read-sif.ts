import { open } from 'node:fs/promises';
import { error, type Diagnostic, type Reason } from '../../core/diagnostic.js';
import { fail, ok, type Result } from '../../core/result.js';
import {
  DATA_PARTITION,
  DATA_SIGNATURE,
  HASH_TYPES,
  SIF_DESCRIPTOR_SIZE,
  SIF_GROUP_MASK,
  SIF_HEADER_SIZE,
  SIF_LAUNCH_LENGTH,
  SIF_MAGIC,
  SIF_MAGIC_OFFSET,
  SIF_NAME_LENGTH,
  SIF_VERSION,
  archName,
  dataTypeName,
  isKnownDataType,
} from './sif-format.js';

export interface SifHeader {
  /** The launch line without its trailing NULs ("#!/usr/bin/env run-singularity\n"), or "". */
  readonly launchScript: string;
  readonly version: string;
  /** GOARCH of the primary partition ("amd64"), or "unknown". */
  readonly arch: string;
  /** The UUID, formatted 8-4-4-4-12. */
  readonly id: string;
  /** Seconds since the epoch as stored; GO_ZERO_TIME means "no time" (a deterministic image). */
  readonly createdAt: bigint;
  readonly modifiedAt: bigint;
  readonly descriptorsFree: number;
  readonly descriptorsTotal: number;
  readonly descriptorsOffset: number;
  readonly descriptorsSize: number;
  readonly dataOffset: number;
  readonly dataSize: number;
}

export interface SifPartition {
  readonly fsType: number;
  readonly partType: number;
  /** GOARCH, or "unknown". */
  readonly arch: string;
}

export interface SifObject {
  readonly id: number;
  /** The group without the group mask; 0 is no group. */
  readonly group: number;
  /** The linked object or group (`linkIsGroup`); 0 is no link. */
  readonly link: number;
  readonly linkIsGroup: boolean;
  readonly dataType: number;
  readonly offset: number;
  readonly size: number;
  readonly createdAt: bigint;
  readonly modifiedAt: bigint;
  readonly name: string;
  /** The descriptor's 585 bytes as stored (signatures cover parts of them). */
  readonly raw: Buffer;
  /** The type-specific metadata (384 bytes). */
  readonly extra: Buffer;
}

export interface SifImage {
  /** Where the file is (readSif: as opened, not as shown in messages). */
  readonly path: string;
  readonly fileSize: number;
  readonly header: SifHeader;
  /** The bytes of the global header (signatures cover parts of them). */
  readonly rawHeader: Buffer;
  /** The objects of the used descriptors, in descriptor order (as siftool lists them). */
  readonly objects: readonly SifObject[];
}

/** How many descriptors we accept in a table; `sif` makes 48, a few thousand is already absurd. */
const MAX_DESCRIPTORS = 65536;

function sifError(path: string, reason: Reason, message: string, hint: string): Diagnostic {
  return error(reason, `${path}: ${message}`, { hint });
}

function int64(b: Buffer, at: number): bigint {
  return b.readBigInt64LE(at);
}

function formatUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

/** An int64 field as a number, or undefined when it is negative or past what a file can hold. */
function size(value: bigint): number | undefined {
  return value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(value);
}

function parseHeader(path: string, b: Buffer, fileSize: number): Result<SifHeader> {
  const hint = 'the file is damaged or not a SIF image; build or pull it again';
  const fields = [int64(b, 80), int64(b, 88), int64(b, 96), int64(b, 104), int64(b, 112), int64(b, 120)].map(size);
  const [free, total, descriptorsOffset, descriptorsSize, dataOffset, dataSize] = fields;
  if (free === undefined || total === undefined || descriptorsOffset === undefined || descriptorsSize === undefined || dataOffset === undefined || dataSize === undefined) {
    return fail(sifError(path, 'sif-truncated', 'the SIF global header holds a negative or impossible count, offset or size', hint));
  }
  if (total > MAX_DESCRIPTORS || free > total) {
    return fail(sifError(path, 'sif-truncated', `the SIF global header says ${total} descriptors (${free} free), which no SIF file has`, hint));
  }
  if (descriptorsSize < total * SIF_DESCRIPTOR_SIZE) {
    return fail(
      sifError(path, 'sif-truncated', `the SIF descriptor table is ${descriptorsSize} bytes, too short for its ${total} descriptors of ${SIF_DESCRIPTOR_SIZE} bytes`, hint),
    );
  }
  if (descriptorsOffset < SIF_HEADER_SIZE || descriptorsOffset + total * SIF_DESCRIPTOR_SIZE > fileSize) {
    return fail(
      sifError(
        path,
        'sif-truncated',
        `the SIF descriptor table (bytes ${descriptorsOffset}-${descriptorsOffset + total * SIF_DESCRIPTOR_SIZE}) is not inside the file (${fileSize} bytes)`,
        'the file was cut short (an interrupted copy or download?); fetch it again',
      ),
    );
  }
  return ok({
    launchScript: cString(b.subarray(0, SIF_LAUNCH_LENGTH)),
    version: cString(b.subarray(42, 45)),
    arch: archName(b.subarray(45, 48)),
    id: formatUuid(b.subarray(48, 64)),
    createdAt: int64(b, 64),
    modifiedAt: int64(b, 72),
    descriptorsFree: free,
    descriptorsTotal: total,
    descriptorsOffset,
    descriptorsSize,
    dataOffset,
    dataSize,
  });
}

function parseDescriptor(raw: Buffer): SifObject & { used: boolean; offset64: bigint; size64: bigint } {
  const group = raw.readUInt32LE(9);
  const link = raw.readUInt32LE(13);
  const offset64 = int64(raw, 17);
  const size64 = int64(raw, 25);
  return {
    used: raw[4] !== 0,
    id: raw.readUInt32LE(5),
    group: (group & ~SIF_GROUP_MASK) >>> 0,
    link: (link & ~SIF_GROUP_MASK) >>> 0,
    linkIsGroup: ((link & SIF_GROUP_MASK) >>> 0) === SIF_GROUP_MASK,
    dataType: raw.readInt32LE(0),
    offset64,
    size64,
    offset: Number(offset64),
    size: Number(size64),
    createdAt: int64(raw, 41),
    modifiedAt: int64(raw, 49),
    name: cString(raw.subarray(73, 73 + SIF_NAME_LENGTH)),
    raw,
    extra: raw.subarray(73 + SIF_NAME_LENGTH),
  };
}

/** Checks what a reader must trust before it reads or mounts an object's bytes. */
function checkObjects(path: string, header: SifHeader, objects: readonly ReturnType<typeof parseDescriptor>[], fileSize: number): Diagnostic | undefined {
  const hint = 'the file is damaged or was not written by a SIF tool; build or pull it again';
  const tableEnd = header.descriptorsOffset + header.descriptorsTotal * SIF_DESCRIPTOR_SIZE;
  for (const o of objects) {
    if (!isKnownDataType(o.dataType)) {
      return sifError(
        path,
        'sif-unknown-type',
        `SIF object ${o.id} has unknown data type 0x${(o.dataType >>> 0).toString(16)}`,
        'the image was written by a newer SIF tool or is damaged; the known types are 0x4001 (Def.FILE) to 0x400b (OCI.Blob)',
      );
    }
    const end = o.offset64 + o.size64;
    if (o.offset64 < 0n || o.size64 < 0n || end > BigInt(fileSize)) {
      return sifError(
        path,
        'sif-object-out-of-bounds',
        `SIF object ${o.id} (${dataTypeName(o.dataType)}, bytes ${o.offset64}-${end}) lies past the end of the file (${fileSize} bytes)`,
        'the file was cut short (an interrupted copy or download?); fetch it again',
      );
    }
    if (o.size > 0 && o.offset < tableEnd) {
      return sifError(path, 'sif-objects-overlap', `SIF object ${o.id} (${dataTypeName(o.dataType)}, bytes ${o.offset}-${o.offset + o.size}) overlaps the header or descriptor table (bytes 0-${tableEnd})`, hint);
    }
  }
  const sorted = objects.filter((o) => o.size > 0).sort((a, b) => a.offset - b.offset || a.id - b.id);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (a.offset + a.size > b.offset) {
      return sifError(
        path,
        'sif-objects-overlap',
        `SIF objects ${a.id} (${dataTypeName(a.dataType)}, bytes ${a.offset}-${a.offset + a.size}) and ${b.id} (${dataTypeName(b.dataType)}, bytes ${b.offset}-${b.offset + b.size}) overlap`,
        hint,
      );
    }
  }
  return undefined;
}

/**
 * Parses a SIF file's global header and descriptors from its first bytes (`head` holds at least
 * the header and the descriptor table; `fileSize` is the whole file's). Checks everything a reader
 * relies on: the magic, the version, that the table and every object lie inside the file, that
 * no two objects share bytes, that every type is known. One Diagnostic for the first problem.
 */
export function parseSif(path: string, head: Buffer, fileSize: number): Result<SifImage> {
  if (head.length < SIF_MAGIC_OFFSET + SIF_MAGIC.length || head.toString('latin1', SIF_MAGIC_OFFSET, SIF_MAGIC_OFFSET + SIF_MAGIC.length) !== SIF_MAGIC) {
    return fail(sifError(path, 'sif-bad-magic', `not a SIF image: no "SIF_MAGIC" at byte ${SIF_MAGIC_OFFSET}`, 'give a .sif file built by Apptainer, SingularityCE or orchestrator'));
  }
  if (fileSize < SIF_HEADER_SIZE || head.length < SIF_HEADER_SIZE) {
    return fail(sifError(path, 'sif-truncated', `the SIF global header is cut short (${fileSize} of ${SIF_HEADER_SIZE} bytes)`, 'the file was cut short; fetch it again'));
  }
  const version = cString(head.subarray(42, 45));
  if (version !== SIF_VERSION || head[44] !== 0) {
    return fail(sifError(path, 'sif-bad-version', `SIF version '${version}' is not supported (only ${SIF_VERSION})`, 'the image was written by a SIF tool this orchestrator does not know'));
  }
  const header = parseHeader(path, head, fileSize);
  if (!header.ok) return header;
  const h = header.value;
  if (head.length < h.descriptorsOffset + h.descriptorsTotal * SIF_DESCRIPTOR_SIZE) {
    return fail(sifError(path, 'sif-truncated', 'the SIF descriptor table was not read whole', 'the file changed while it was read; try again'));
  }
  const descriptors = [];
  for (let i = 0; i < h.descriptorsTotal; i++) {
    const at = h.descriptorsOffset + i * SIF_DESCRIPTOR_SIZE;
    const d = parseDescriptor(Buffer.from(head.subarray(at, at + SIF_DESCRIPTOR_SIZE)));
    if (d.used) descriptors.push(d);
  }
  const bad = checkObjects(path, h, descriptors, fileSize);
  if (bad) return fail(bad);
  const objects: SifObject[] = descriptors.map(({ used: _used, offset64: _o, size64: _s, ...o }) => o);
  return ok({ path, fileSize, header: h, rawHeader: Buffer.from(head.subarray(0, SIF_HEADER_SIZE)), objects });
}

/** Reads and parses the header and descriptors of the SIF file at `path` (parseSif). */
export async function readSif(path: string, shownAs: string = path): Promise<Result<SifImage>> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return fail(error('image-not-found', `${shownAs}: no such file`));
    return fail(error('image-unreadable', `${shownAs}: ${(e as Error).message}`));
  }
  try {
    const { size: fileSize } = await handle.stat();
    const first = Buffer.alloc(Math.min(fileSize, SIF_HEADER_SIZE));
    await handle.read(first, 0, first.length, 0);
    if (first.length < SIF_HEADER_SIZE) return parseSif(shownAs, first, fileSize);
    const total = Number(first.readBigInt64LE(88));
    const offset = Number(first.readBigInt64LE(96));
    const end = offset + total * SIF_DESCRIPTOR_SIZE;
    // A table that lies outside the file (or is absurd) is refused by parseSif from the header alone.
    const wanted = Number.isSafeInteger(end) && end > SIF_HEADER_SIZE && end <= fileSize && total <= MAX_DESCRIPTORS ? end : SIF_HEADER_SIZE;
    const head = Buffer.alloc(wanted);
    await handle.read(head, 0, wanted, 0);
    const parsed = parseSif(shownAs, head, fileSize);
    return parsed.ok ? ok({ ...parsed.value, path }) : parsed;
  } catch (e) {
    return fail(error('image-unreadable', `${shownAs}: ${(e as Error).message}`));
  } finally {
    await handle.close();
  }
}

/** The bytes of one object (for the small ones: definition file, labels, JSON, signatures). */
export async function readSifObject(image: SifImage, object: SifObject): Promise<Buffer> {
  const handle = await open(image.path, 'r');
  try {
    const b = Buffer.alloc(object.size);
    const { bytesRead } = await handle.read(b, 0, object.size, object.offset);
    return b.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** A partition's file system, partition type and architecture. */
export function partitionOf(object: SifObject): SifPartition | undefined {
  if (object.dataType !== DATA_PARTITION) return undefined;
  return { fsType: object.extra.readInt32LE(0), partType: object.extra.readInt32LE(4), arch: archName(object.extra.subarray(8, 11)) };
}

/** A signature's hash (undefined when the type is unknown) and signer fingerprint (20 bytes, or none). */
export function signatureOf(object: SifObject): { hash: { name: string; node: string } | undefined; fingerprint: Buffer | undefined } | undefined {
  if (object.dataType !== DATA_SIGNATURE) return undefined;
  const fingerprint = object.extra.subarray(4, 24);
  return { hash: HASH_TYPES[object.extra.readInt32LE(0)], fingerprint: fingerprint.every((b) => b === 0) ? undefined : Buffer.from(fingerprint) };
}
