import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, open, rename, rm } from 'node:fs/promises';
import { error, type Diagnostic } from '../../core/diagnostic.js';
import { tempSibling } from '../../core/fs-atomic.js';
import { fail, ok, type Result } from '../../core/result.js';
import { LAUNCH_HEADER } from '../launch-header.js';
import {
  DATA_DEFFILE,
  DATA_GENERIC_JSON,
  DATA_LABELS,
  DATA_PARTITION,
  FS_SQUASHFS,
  PART_PRIMSYS,
  SIF_DESCRIPTOR_CAPACITY,
  SIF_DESCRIPTOR_SIZE,
  SIF_DESCRIPTORS_OFFSET,
  SIF_EXTRA_LENGTH,
  SIF_GROUP_MASK,
  SIF_HEADER_SIZE,
  SIF_MAGIC,
  SIF_NAME_LENGTH,
  SIF_PARTITION_ALIGNMENT,
  SIF_VERSION,
  archField,
} from './sif-format.js';

export interface WriteSifOptions {
  /** The `.sif` to write; replaced atomically. */
  readonly output: string;
  /** Where the squashfs file system is: a file and the byte it starts at (a `.simg` has it at 31). */
  readonly squashfs: { readonly file: string; readonly offset: number };
  /** The definition file (`/.singularity.d/Singularity`), as the `Def.FILE` object; absent: none. */
  readonly deffile?: Buffer;
  /** The labels (`/.singularity.d/labels.json`), as the `JSON.Labels` object; absent: none. */
  readonly labels?: Buffer;
  /** JSON objects (`JSON.Generic`), each with its name: the OCI image config ("oci-config.json"). */
  readonly genericJson?: readonly { readonly name: string; readonly data: Buffer }[];
  /** GOARCH of the root file system ("amd64"). */
  readonly arch: string;
  /** Seconds since the epoch: the header's and every object's time. */
  readonly epoch: number;
  readonly signal?: AbortSignal;
}

interface PlannedObject {
  readonly type: number;
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly extra: Buffer;
}

/** A descriptor's 585 bytes (docs/ARCHITECTURE.md, SIF images; src/image/sif/sif-format.ts). */
function descriptorBytes(o: PlannedObject, id: number, paddedFrom: number, epoch: number): Buffer {
  const d = Buffer.alloc(SIF_DESCRIPTOR_SIZE);
  d.writeInt32LE(o.type, 0);
  d[4] = 1;
  d.writeUInt32LE(id, 5);
  d.writeUInt32LE((SIF_GROUP_MASK | 1) >>> 0, 9);
  d.writeUInt32LE(0, 13);
  d.writeBigInt64LE(BigInt(o.offset), 17);
  d.writeBigInt64LE(BigInt(o.size), 25);
  d.writeBigInt64LE(BigInt(o.offset - paddedFrom + o.size), 33);
  d.writeBigInt64LE(BigInt(epoch), 41);
  d.writeBigInt64LE(BigInt(epoch), 49);
  d.write(o.name, 73, SIF_NAME_LENGTH, 'utf8');
  o.extra.copy(d, 73 + SIF_NAME_LENGTH, 0, SIF_EXTRA_LENGTH);
  return d;
}

/** A name-based UUID (version 5 layout) from the SHA-256 of everything the image holds. */
function contentUuid(digest: Buffer): Buffer {
  const id = Buffer.from(digest.subarray(0, 16));
  id[6] = (id[6]! & 0x0f) | 0x50;
  id[8] = (id[8]! & 0x3f) | 0x80;
  return id;
}

function headerBytes(options: { arch: Buffer; id: Buffer; epoch: number; used: number; dataSize: number }): Buffer {
  const h = Buffer.alloc(SIF_HEADER_SIZE);
  h.write(LAUNCH_HEADER, 0, 'latin1');
  h.write(SIF_MAGIC, 32, 'latin1');
  h.write(`${SIF_VERSION}\0`, 42, 'latin1');
  options.arch.copy(h, 45);
  options.id.copy(h, 48);
  h.writeBigInt64LE(BigInt(options.epoch), 64);
  h.writeBigInt64LE(BigInt(options.epoch), 72);
  h.writeBigInt64LE(BigInt(SIF_DESCRIPTOR_CAPACITY - options.used), 80);
  h.writeBigInt64LE(BigInt(SIF_DESCRIPTOR_CAPACITY), 88);
  h.writeBigInt64LE(BigInt(SIF_DESCRIPTORS_OFFSET), 96);
  h.writeBigInt64LE(BigInt(SIF_DESCRIPTOR_CAPACITY * SIF_DESCRIPTOR_SIZE), 104);
  h.writeBigInt64LE(BigInt(SIF_DESCRIPTORS_OFFSET + SIF_DESCRIPTOR_CAPACITY * SIF_DESCRIPTOR_SIZE), 112);
  h.writeBigInt64LE(BigInt(options.dataSize), 120);
  return h;
}

/**
 * Writes a SIF image as Apptainer's `build` lays it out: the launch line, magic, version and
 * architecture; 48 descriptors at 4096; then the objects in order, packed from byte 32176:
 * `Def.FILE`, `JSON.Labels`, `JSON.Generic` (each when given), and the root file system
 * (`FS (Squashfs/*System/ARCH)`, group 1) on the next multiple of 4096. The squashfs bytes are
 * copied from `squashfs` (the `.simg` export, so both formats hold the same file system).
 *
 * Byte-reproducible: the times are `epoch`, and the ID is a UUID made from the SHA-256 of the
 * objects (Apptainer draws a random one), so the same content and epoch give the same file.
 * Published by rename; an interrupted or failed write leaves the previous image as it was.
 */
export async function writeSif(options: WriteSifOptions): Promise<Result<{ bytes: number; partitionOffset: number }, Diagnostic>> {
  const arch = archField(options.arch);
  if (arch === undefined) {
    return fail(error('image-unsupported', `${options.output}: SIF has no code for the architecture '${options.arch}'`, { hint: 'build for amd64, arm64, ppc64le, s390x or riscv64' }));
  }
  const dataOffset = SIF_DESCRIPTORS_OFFSET + SIF_DESCRIPTOR_CAPACITY * SIF_DESCRIPTOR_SIZE;
  const small: { type: number; name: string; data: Buffer }[] = [];
  if (options.deffile) small.push({ type: DATA_DEFFILE, name: '', data: options.deffile });
  if (options.labels) small.push({ type: DATA_LABELS, name: '', data: options.labels });
  for (const j of options.genericJson ?? []) small.push({ type: DATA_GENERIC_JSON, name: j.name, data: j.data });

  const tmp = tempSibling(options.output);
  const handle = await open(tmp, 'w', 0o755);
  let published = false;
  try {
    const hash = createHash('sha256');
    const planned: { object: PlannedObject; paddedFrom: number }[] = [];
    let at = dataOffset;
    for (const s of small) {
      await handle.write(s.data, 0, s.data.length, at);
      hash.update(`${s.type}:${s.name}:${s.data.length}\0`).update(s.data);
      planned.push({ object: { type: s.type, name: s.name, offset: at, size: s.data.length, extra: Buffer.alloc(0) }, paddedFrom: at });
      at += s.data.length;
    }
    const partitionOffset = Math.ceil(at / SIF_PARTITION_ALIGNMENT) * SIF_PARTITION_ALIGNMENT;
    let size = 0;
    let position = partitionOffset;
    for await (const chunk of createReadStream(options.squashfs.file, { start: options.squashfs.offset, highWaterMark: 1 << 20, ...(options.signal ? { signal: options.signal } : {}) })) {
      const b = chunk as Buffer;
      await handle.write(b, 0, b.length, position);
      hash.update(b);
      position += b.length;
      size += b.length;
    }
    const extra = Buffer.alloc(11);
    extra.writeInt32LE(FS_SQUASHFS, 0);
    extra.writeInt32LE(PART_PRIMSYS, 4);
    arch.copy(extra, 8);
    planned.push({ object: { type: DATA_PARTITION, name: '', offset: partitionOffset, size, extra }, paddedFrom: at });
    hash.update(`${DATA_PARTITION}:${size}:${options.arch}:${options.epoch}`);

    const table = Buffer.alloc(SIF_DESCRIPTOR_CAPACITY * SIF_DESCRIPTOR_SIZE);
    planned.forEach(({ object, paddedFrom }, i) => descriptorBytes(object, i + 1, paddedFrom, options.epoch).copy(table, i * SIF_DESCRIPTOR_SIZE));
    const header = headerBytes({ arch, id: contentUuid(hash.digest()), epoch: options.epoch, used: planned.length, dataSize: position - dataOffset });
    await handle.write(header, 0, header.length, 0);
    await handle.write(table, 0, table.length, SIF_DESCRIPTORS_OFFSET);
    await handle.truncate(position);
    await handle.sync();
    await handle.close();
    await chmod(tmp, 0o755);
    await rename(tmp, options.output);
    published = true;
    return ok({ bytes: position, partitionOffset });
  } catch (e) {
    if (options.signal?.aborted) return fail(error('interrupted', `writing ${options.output} was interrupted`));
    return fail(error('system-error', `could not write ${options.output}: ${(e as Error).message}`));
  } finally {
    if (!published) {
      await handle.close().catch(() => undefined);
      await rm(tmp, { force: true });
    }
  }
}
