import { open } from 'node:fs/promises';
import { error, type Diagnostic } from '../../core/diagnostic.js';
import { fail, ok, type Result } from '../../core/result.js';
import { partitionOf, type SifImage, type SifObject } from './read-sif.js';
import { FS_ENCRYPTED_SQUASHFS, FS_EXT3, FS_GOCRYPTFS_SQUASHFS, FS_SQUASHFS, PART_PRIMSYS, fsTypeName } from './sif-format.js';

export interface SifRootPartition {
  readonly object: SifObject;
  readonly format: 'squashfs' | 'ext3';
  readonly offset: number;
  readonly size: number;
}

/**
 * The partition a container runs from, as Apptainer picks it: the primary system partition
 * (`*System`), else the first system partition. Encrypted partitions are refused (we hold no
 * key), as are file systems we cannot mount (Raw, Archive). A squashfs or ext3 partition is
 * checked to hold a super block of its type whose size fits inside it, so nothing mounts the
 * wrong bytes.
 */
export async function sifRootPartition(shownAs: string, image: SifImage): Promise<Result<SifRootPartition, Diagnostic>> {
  const partitions = image.objects.flatMap((o) => {
    const p = partitionOf(o);
    return p && (p.partType === PART_PRIMSYS || p.partType === 1) ? [{ o, p }] : [];
  });
  const chosen = partitions.find(({ p }) => p.partType === PART_PRIMSYS) ?? partitions[0];
  if (!chosen) {
    return fail(error('sif-no-partition', `${shownAs}: the SIF image has no system partition to run`, { hint: "'orchestrator sif list' shows what it holds" }));
  }
  const { o, p } = chosen;
  if (p.fsType === FS_ENCRYPTED_SQUASHFS || p.fsType === FS_GOCRYPTFS_SQUASHFS) {
    return fail(
      error('sif-encrypted', `${shownAs}: the root file system of this SIF image is encrypted (${fsTypeName(p.fsType)}, object ${o.id})`, {
        hint: 'orchestrator cannot decrypt SIF partitions; decrypt it with apptainer (build a plain image from it) first',
      }),
    );
  }
  if (p.fsType !== FS_SQUASHFS && p.fsType !== FS_EXT3) {
    return fail(error('image-unsupported', `${shownAs}: the root file system of this SIF image is ${fsTypeName(p.fsType)} (object ${o.id}), not squashfs or ext3`));
  }
  const damaged = { hint: 'the image is damaged; build or pull it again' };
  if (p.fsType === FS_EXT3) {
    const sb = await readAt(image.path, o.offset + 1024, Math.min(1024, Math.max(0, o.size - 1024)));
    if (sb.length < 58 || sb.readUInt16LE(56) !== 0xef53) {
      return fail(error('image-unrecognized', `${shownAs}: SIF object ${o.id} (FS, bytes ${o.offset}-${o.offset + o.size}) does not hold an ext3 file system`, damaged));
    }
    const bytes = sb.readUInt32LE(4) * 1024 * 2 ** sb.readUInt32LE(24);
    if (bytes > o.size) {
      return fail(error('image-truncated', `${shownAs}: the ext3 file system in SIF object ${o.id} says ${bytes} bytes, the object holds ${o.size}`, damaged));
    }
    return ok({ object: o, format: 'ext3', offset: o.offset, size: o.size });
  }
  const sb = await readAt(image.path, o.offset, Math.min(96, o.size));
  if (sb.length < 96 || sb.toString('latin1', 0, 4) !== 'hsqs') {
    return fail(error('image-unrecognized', `${shownAs}: SIF object ${o.id} (FS, bytes ${o.offset}-${o.offset + o.size}) does not hold a squashfs file system`, damaged));
  }
  const bytesUsed = Number(sb.readBigUInt64LE(40));
  if (bytesUsed > o.size) {
    return fail(
      error('image-truncated', `${shownAs}: the squashfs file system in SIF object ${o.id} says ${bytesUsed} bytes, the object holds ${o.size}`, damaged),
    );
  }
  return ok({ object: o, format: 'squashfs', offset: o.offset, size: o.size });
}

async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  const b = Buffer.alloc(length);
  const handle = await open(path, 'r');
  try {
    const { bytesRead } = await handle.read(b, 0, length, position);
    return b.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
