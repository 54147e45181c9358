/**
 * The reverse of unpack-layer.ts: an overlay upper folder (a step's snapshot) as one OCI layer
 * tar, compressed, written to a file, with its blob digest and its diffid.
 *
 *   walk (sorted, lstat) ─ tar-stream pack ─┬─ sha256 → diffid
 *                                           └─ gzip / zstd ─┬─ sha256 → digest
 *                                                           └─ file
 *
 * Overlay's own forms become OCI's: a whiteout (a 0/0 character device) is an empty
 * `.wh.NAME`, an opaque folder (`trusted.overlay.opaque=y`) gets a `.wh..wh..opq` entry, and the
 * other `trusted.overlay.*` attributes (origin, impure, redirect) are left out, as unpacking
 * ignores them. Entries come in byte order of their paths, with owners, modes, mtimes (pax `mtime`
 * keeps the nanoseconds), xattrs (pax `SCHILY.xattr.*`) and hard links as they are; no user or
 * group names and no access times, so the same folder always gives the same tar.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import tar from 'tar-stream';
import { error, type Diagnostic } from '../core/diagnostic.js';
import type { Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';
import { unreachable } from '../core/unreachable.js';
import { nativeAddon } from '../native/addon.js';
import { isOverlayXattr, overlayXattrPrefix } from '../core/id-map.js';

export type SnapshotCompression = 'gzip' | 'zstd';

export interface SnapshotTarOptions {
  /** The folder (an overlay upper) to pack. */
  readonly folder: string;
  /** The file to write (replaced); on failure it is removed. */
  readonly output: string;
  readonly compression: SnapshotCompression;
  /**
   * The root entry's mtime (seconds) instead of the folder's own: the builder touches a snapshot
   * folder each time it reuses it (least recently used first in `cache prune`), so an image pushed
   * twice needs a fixed one to give the same layer.
   */
  readonly rootMtime?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface SnapshotTar {
  /** sha256 of the compressed file: the blob digest. */
  readonly digest: Digest;
  /** Bytes of the compressed file. */
  readonly size: number;
  /** sha256 of the uncompressed tar. */
  readonly diffId: Digest;
  /** `application/vnd.oci.image.layer.v1.tar+gzip` or `+zstd`. */
  readonly mediaType: string;
  readonly entries: number;
}

const OPAQUE = '.wh..wh..opq';
const SMALL_FILE = 1 << 20;
const WHITEOUT_PREFIX = '.wh.';
const utf8 = new TextDecoder('utf-8', { fatal: true });

class SnapshotTarError extends Error {}

/** Passes bytes through, hashing and counting them. */
class Tap extends Transform {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

function compressor(compression: SnapshotCompression): Result<Transform, Diagnostic> {
  switch (compression) {
    case 'gzip':
      return ok(zlib.createGzip({ level: 6, chunkSize: 256 * 1024 }));
    case 'zstd': {
      const create = (zlib as unknown as { createZstdCompress?: (o: object) => Transform }).createZstdCompress;
      if (create === undefined)
        return fail(
          error('unsupported-compression', `this Node (${process.version}) has no zstd compressor`, { hint: 'use gzip, or Node 22.15 or later' }),
        );
      return ok(create({ chunkSize: 256 * 1024 }));
    }
    default:
      return unreachable(compression);
  }
}

export const SNAPSHOT_MEDIA_TYPES: Readonly<Record<SnapshotCompression, string>> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

/** A pax mtime with nanoseconds, as GNU tar writes it: `1700000000.123456789`. */
function paxTime(st: BigIntStats): string {
  const ns = st.mtimeNs;
  const s = ns / 1_000_000_000n;
  const frac = ns % 1_000_000_000n;
  return frac === 0n ? String(s) : `${s}.${String(frac).padStart(9, '0').replace(/0+$/, '')}`;
}

/** The entry's xattrs as pax records; overlay's own are left out. A value that is not UTF-8 cannot go through tar-stream. */
function xattrRecords(path: string, rel: string): Record<string, string> {
  const addon = nativeAddon();
  const out: Record<string, string> = {};
  for (const name of addon.llistxattr(path).sort()) {
    if (isOverlayXattr(name)) continue;
    const value = addon.lgetxattr(path, name);
    let text: string;
    try {
      text = utf8.decode(value);
    } catch {
      throw new SnapshotTarError(`'${rel}' has the extended attribute ${name} with a binary value, which this layer writer cannot store`);
    }
    out[`SCHILY.xattr.${name}`] = text;
  }
  return out;
}

function isOpaque(path: string): boolean {
  try {
    return nativeAddon().lgetxattr(path, `${overlayXattrPrefix()}opaque`).toString('utf8') === 'y';
  } catch {
    return false;
  }
}

function devNumbers(rdev: bigint): { devmajor: number; devminor: number } {
  const r = Number(rdev);
  return { devmajor: ((r >>> 8) & 0xfff) | (Math.floor(r / 2 ** 32) & ~0xfff), devminor: (r & 0xff) | ((r >>> 12) & ~0xff) };
}

/**
 * Feeds tar-stream, which queues entries in order. The file system calls are synchronous, as in
 * layer-writer.ts: short calls on a local file system, cheaper than a thread-pool round trip each. Waiting for each entry would wait for the
 * compressor once per entry (a thread-pool round trip: milliseconds for thousands of small
 * files), so small entries are only waited for in batches (8 MiB or 512 entries), and a large
 * file, streamed from disk, after everything before it.
 */
class Feeder {
  #pending: Array<Promise<void>> = [];
  #bytes = 0;
  constructor(readonly pack: tar.Pack) {}

  #entry(header: Partial<tar.Header> & { name: string }, body: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.pack.entry(header as tar.Header, body, (e) => (e ? reject(e) : resolve())));
  }

  async add(header: Partial<tar.Header> & { name: string }, content?: string): Promise<void> {
    const size = header.size ?? 0;
    if (content !== undefined && size > SMALL_FILE) {
      await this.flush();
      await new Promise<void>((resolve, reject) => {
        const sink = this.pack.entry(header as tar.Header, (e) => (e ? reject(e) : resolve()));
        pipeline(createReadStream(content), sink).catch(reject);
      });
      return;
    }
    // With a body (empty for everything but files), tar-stream writes the entry at once.
    const body = content === undefined ? Buffer.alloc(0) : readFileSync(content);
    if (body.length !== size) throw new SnapshotTarError(`'${header.name}' changed size while it was packed`);
    this.#pending.push(this.#entry(header, body));
    this.#bytes += body.length + 512;
    if (this.#bytes > 8 * SMALL_FILE || this.#pending.length >= 512) await this.flush();
  }

  async flush(): Promise<void> {
    const pending = this.#pending;
    this.#pending = [];
    this.#bytes = 0;
    await Promise.all(pending);
  }
}

/** Walks the folder in byte order of paths and feeds the pack. Returns the number of entries. */
// Long on purpose: one case per file type, each with overlay's translation beside it.
async function packFolder(pack: tar.Pack, folder: string, rootMtime: number | undefined, signal: AbortSignal | undefined): Promise<number> {
  const feeder = new Feeder(pack);
  const addEntry = (_pack: tar.Pack, header: Partial<tar.Header> & { name: string }, content?: string): Promise<void> => feeder.add(header, content);
  const links = new Map<string, string>();
  let entries = 0;
  const visit = async (rel: string): Promise<void> => {
    signal?.throwIfAborted();
    const path = rel === '' ? folder : `${folder}/${rel}`;
    const st = lstatSync(path, { bigint: true });
    const base = {
      name: rel === '' ? './' : rel,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: rel === '' && rootMtime !== undefined ? new Date(rootMtime * 1000) : new Date(Number(st.mtimeMs)),
      uname: '',
      gname: '',
    };
    const mtime = rel === '' && rootMtime !== undefined ? String(Math.floor(rootMtime)) : paxTime(st);
    const pax = (): Record<string, string> => ({ mtime, ...xattrRecords(path, rel === '' ? '.' : rel) });
    entries += 1;
    if (st.isDirectory()) {
      await addEntry(pack, { ...base, name: rel === '' ? './' : `${rel}/`, type: 'directory', pax: pax() });
      if (isOpaque(path)) {
        entries += 1;
        await addEntry(pack, { ...base, name: rel === '' ? OPAQUE : `${rel}/${OPAQUE}`, mode: 0, uid: 0, gid: 0, type: 'file', size: 0 });
      }
      const names = readdirSync(path).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      for (const name of names) {
        if (name.startsWith(WHITEOUT_PREFIX)) throw new SnapshotTarError(`'${rel === '' ? name : `${rel}/${name}`}' has a name that OCI layers reserve for whiteouts`);
        await visit(rel === '' ? name : `${rel}/${name}`);
      }
      return;
    }
    if (st.isCharacterDevice() && st.rdev === 0n) {
      // Overlay's whiteout → OCI's.
      const slash = rel.lastIndexOf('/');
      const name = slash < 0 ? `${WHITEOUT_PREFIX}${rel}` : `${rel.slice(0, slash + 1)}${WHITEOUT_PREFIX}${rel.slice(slash + 1)}`;
      await addEntry(pack, { ...base, name, mode: 0, uid: 0, gid: 0, type: 'file', size: 0 });
      return;
    }
    if (st.nlink > 1n) {
      const id = `${st.dev}:${st.ino}`;
      const first = links.get(id);
      if (first !== undefined) {
        await addEntry(pack, { ...base, type: 'link', linkname: first, pax: pax() });
        return;
      }
      links.set(id, rel);
    }
    if (st.isFile()) await addEntry(pack, { ...base, type: 'file', size: Number(st.size), pax: pax() }, path);
    else if (st.isSymbolicLink()) await addEntry(pack, { ...base, type: 'symlink', linkname: readlinkSync(path), pax: pax() });
    else if (st.isFIFO()) await addEntry(pack, { ...base, type: 'fifo', pax: pax() });
    else if (st.isCharacterDevice()) await addEntry(pack, { ...base, type: 'character-device', ...devNumbers(st.rdev), pax: pax() });
    else if (st.isBlockDevice()) await addEntry(pack, { ...base, type: 'block-device', ...devNumbers(st.rdev), pax: pax() });
    else throw new SnapshotTarError(`'${rel}' is a socket, which a layer cannot hold`);
  };
  await visit('');
  await feeder.flush();
  return entries;
}

/**
 * Packs `folder` into `output` (docs/ARCHITECTURE.md, Remote step cache). Failures are values:
 * `layer-read-failed` naming the entry (a binary xattr, a reserved name, a read error), or
 * `unsupported-compression`; the output is removed then.
 */
export async function writeSnapshotTar(options: SnapshotTarOptions): Promise<Result<SnapshotTar, Diagnostic>> {
  const { folder, output, compression, signal } = options;
  const z = compressor(compression);
  if (!z.ok) return z;
  const pack = tar.pack();
  const raw = new Tap();
  const packed = new Tap();
  const file = createWriteStream(output);
  // The file is made by an open in the thread pool, which a failed pipeline does not wait for: it
  // settles when it has counted its streams' ends, and the open may come after that.
  const closed = new Promise<void>((resolve) => file.once('close', () => resolve()));
  const written = pipeline(pack, raw, z.value, packed, file, signal ? { signal } : {});
  let entries = 0;
  try {
    entries = await packFolder(pack, folder, options.rootMtime, signal);
    pack.finalize();
    await written;
  } catch (e) {
    pack.destroy();
    await written.catch(() => undefined);
    // Removed once it is closed (opened first, then destroyed by the pipeline), else the open
    // could make the file again after it was removed.
    await closed;
    await rm(output, { force: true });
    if (signal?.aborted) return fail(error('interrupted', 'interrupted'));
    const why = e instanceof SnapshotTarError ? e.message : `${(e as { code?: string }).code ?? ''} ${e instanceof Error ? e.message : String(e)}`.trim();
    return fail(error('layer-read-failed', `cannot pack ${folder} as a layer: ${why}`, { hint: 'the snapshot stays local; nothing was pushed' }));
  }
  return ok({
    digest: `sha256:${packed.hash.digest('hex')}` as Digest,
    size: packed.bytes,
    diffId: `sha256:${raw.hash.digest('hex')}` as Digest,
    mediaType: SNAPSHOT_MEDIA_TYPES[compression],
    entries,
  });
}
