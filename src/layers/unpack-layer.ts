/**
 * Unpacks one layer blob into overlay format, safely and atomically.
 *
 *   source ─ read (1 MiB buffers) ─ gunzip (zlib, thread pool) ─┬─ sha256 → diffid
 *                                                                └─ TarParser → LayerWriter → <tmpDir>/layer-…/
 *   verify diffid → syncfs → renameat2(RENAME_NOREPLACE) → destination
 *
 * The completion marker is the rename itself: a layer is only ever written inside a fresh folder
 * under `tmpDir`, and only a fully written, verified and flushed folder is renamed to
 * `destination`. So `destination` existing means the layer is complete; an interrupted unpack
 * leaves only a `tmpDir/<pid>-layer-*` folder, which no reader looks at (Store.sweepTemps removes it once that process is gone).
 * Nothing is written inside the layer folder besides the layer's own files, because the folder is
 * mounted as an overlay lower directory as it is: a marker file there would show up in the image.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { error, type Diagnostic } from '../core/diagnostic.js';
import type { Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';
import { isErrno, nativeAddon } from '../native/addon.js';
import { compressionOf, decompressor, type LayerCompression } from './layer-compression.js';
import { LayerEntryError, LayerWriter } from './layer-writer.js';
import { TarFormatError, TarParser, UnsupportedEntryError } from './tar-parser.js';

export interface UnpackLayerOptions {
  /** The layer blob: a path to a file (read in 1 MiB pieces) or a stream, which is consumed and closed. */
  readonly source: Readable | string;
  /** The layer's media type from the manifest; decides the decompressor. Give this or `compression`. */
  readonly mediaType?: string;
  /** The compression, when there is no media type (a local tarball). `mediaType` wins when both are given. */
  readonly compression?: LayerCompression;
  /** The diffid from the image config's `rootfs.diff_ids`; the unpack fails when the content differs. */
  readonly expectedDiffId?: Digest;
  /** How messages name the layer: its blob digest from the manifest. Defaults to `expectedDiffId`. */
  readonly layerDigest?: Digest;
  /** The final folder, `<store>/layers/<diffid-hex>`. Its parent is made if missing. */
  readonly destination: string;
  /** A folder on the same file system as `destination` for the work in progress. */
  readonly tmpDir: string;
  /** Whether device files may be made and owners set. Defaults to "running as root". */
  readonly privileged?: boolean;
  /** syncfs before the rename, so a power loss cannot leave a published but empty layer. Default true. */
  readonly durable?: boolean;
  readonly signal?: AbortSignal;
}

export interface UnpackedLayer {
  readonly diffId: Digest;
  /** `destination`. */
  readonly path: string;
  /** True when the layer was already there (before or, in a race, during this unpack). */
  readonly reused: boolean;
  /** Entries in the tar (0 when reused before reading). */
  readonly entries: number;
  readonly whiteouts: number;
  /** Entries stored as owned by 0 because only id 0 exists (single-id mode); 0 when reused. */
  readonly ownersFolded: number;
  /** Device files left out because no user namespace may create them; 0 when reused. */
  readonly devicesSkipped: number;
  readonly opaqueDirs: number;
  /** Bytes of uncompressed tar (0 when reused before reading). */
  readonly tarSize: number;
}

const UNSAFE_HINT = "orchestrator never writes outside a layer's folder; this layer is malformed or hostile: rebuild the image or report it to its publisher";
const CORRUPT_HINT = 'the blob is damaged or not a tar layer: remove it from the cache and pull it again';

/**
 * What unpacking in a user namespace changed, said once for all the layers of a source (or for a
 * local folder or image file copied into the store, src/builder/fold-owners.ts): owners folded to
 * 0 (single-id mode) and device files left out.
 */
export function unpackWarnings(layers: readonly Pick<UnpackedLayer, 'ownersFolded' | 'devicesSkipped'>[], source: string): Diagnostic[] {
  const folded = layers.reduce((n, l) => n + l.ownersFolded, 0);
  const devices = layers.reduce((n, l) => n + l.devicesSkipped, 0);
  const out: Diagnostic[] = [];
  if (folded > 0) {
    out.push({
      severity: 'warning',
      reason: 'single-id-owners',
      message: `${source}: ${folded} file${folded === 1 ? '' : 's'} owned by ids other than 0 stored as owned by 0 (single-id mode: only id 0 exists)`,
      hint: "ask for a /etc/subuid and /etc/subgid range ('usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER') to keep every owner (subuid mode), or build as root",
    });
  }
  if (devices > 0) {
    out.push({
      severity: 'warning',
      reason: 'device-files-skipped',
      message: `${source}: ${devices} device file${devices === 1 ? '' : 's'} left out (a user namespace cannot create device files)`,
      hint: "a container's /dev comes from the host at run time; build as root to keep them in the image",
    });
  }
  return out;
}

/** Unpack a layer blob into `destination` in overlay format. See the file comment for the protocol. */
// Long on purpose: the one loop over a layer's entries (whiteouts, links, devices, xattrs), so that
// every path check stands beside the write it guards.
export async function unpackLayer(options: UnpackLayerOptions): Promise<Result<UnpackedLayer>> {
  const { source, destination, tmpDir, expectedDiffId, signal } = options;
  const name = options.layerDigest ?? expectedDiffId ?? (typeof source === 'string' ? source : basename(destination));
  const closeSource = (): void => {
    if (typeof source !== 'string') source.destroy();
  };

  let compression: LayerCompression;
  if (options.mediaType !== undefined) {
    const c = compressionOf(options.mediaType);
    if (!c.ok) {
      closeSource();
      return c;
    }
    compression = c.value;
  } else if (options.compression !== undefined) {
    compression = options.compression;
  } else {
    closeSource();
    return fail(error('unsupported-compression', `layer ${name}: neither a media type nor a compression was given`));
  }
  const transform = decompressor(compression, options.mediaType);
  if (!transform.ok) {
    closeSource();
    return transform;
  }

  if (signal?.aborted) {
    closeSource();
    transform.value?.destroy();
    return fail(abortedDiagnostic(name));
  }
  if (expectedDiffId !== undefined && (await isDirectory(destination))) {
    closeSource();
    transform.value?.destroy();
    return ok({ diffId: expectedDiffId, path: destination, reused: true, entries: 0, whiteouts: 0, ownersFolded: 0, devicesSkipped: 0, opaqueDirs: 0, tarSize: 0 });
  }

  let tmp: string;
  try {
    await mkdir(tmpDir, { recursive: true });
    await mkdir(dirname(destination), { recursive: true });
    // `<pid>-` first: the store sweeps temps whose process is gone (crash, kill -9, power loss).
    tmp = await mkdtemp(join(tmpDir, `${process.pid}-layer-${basename(destination).slice(0, 12)}-`));
  } catch (e) {
    closeSource();
    transform.value?.destroy();
    return fail(error('layer-write-failed', `layer ${name}: cannot make a temporary folder in ${tmpDir}: ${message(e)}`));
  }

  const privileged = options.privileged ?? process.geteuid?.() === 0;
  const writer = new LayerWriter(tmp, { privileged });
  const parser = new TarParser(writer);
  const hash = createHash('sha256');
  let tarSize = 0;

  const input: Readable = typeof source === 'string' ? createReadStream(source, { highWaterMark: 1 << 20 }) : source;
  const readFailures = new WeakSet<object>();
  let stream: Readable = input;
  const decompress = transform.value;
  if (decompress !== undefined) {
    input.on('error', (e) => {
      readFailures.add(e);
      decompress.destroy(e);
    });
    stream = input.pipe(decompress);
  } else {
    input.once('error', (e) => readFailures.add(e));
  }
  const onAbort = (): void => {
    stream.destroy(new AbortedError());
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();

  try {
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        hash.update(chunk);
        tarSize += chunk.length;
        parser.push(chunk);
      }
      parser.end();
      writer.finish();
    } finally {
      signal?.removeEventListener('abort', onAbort);
      writer.abort();
      input.destroy();
      stream.destroy();
    }
    if (signal?.aborted) throw new AbortedError();

    const diffId = `sha256:${hash.digest('hex')}` as Digest;
    if (expectedDiffId !== undefined && diffId !== expectedDiffId) {
      await rm(tmp, { recursive: true, force: true });
      return fail(
        error('diffid-mismatch', `layer ${name}: its uncompressed content has digest ${diffId}, but the image config lists ${expectedDiffId}`, {
          hint: 'the image is corrupt or was tampered with: remove the blob from the cache and pull it again',
        }),
      );
    }

    const addon = nativeAddon();
    if (options.durable ?? true) addon.syncfs(tmp);
    let reused = false;
    try {
      addon.renameat2(tmp, destination, addon.constants.RENAME_NOREPLACE);
    } catch (e) {
      if (!isErrno(e, 'EEXIST') && !isErrno(e, 'ENOTEMPTY')) throw e;
      // Another process published the same layer first: theirs is as good as ours.
      reused = true;
      await rm(tmp, { recursive: true, force: true });
    }
    if (!reused && (options.durable ?? true)) await fsyncDir(dirname(destination));
    const { stats } = writer;
    return ok({ diffId, path: destination, reused, entries: stats.entries, whiteouts: stats.whiteouts, ownersFolded: stats.ownersFolded, devicesSkipped: stats.devicesSkipped, opaqueDirs: stats.opaqueDirs, tarSize });
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    return fail(toDiagnostic(e, name, readFailures, compression));
  }
}

class AbortedError extends Error {
  override name = 'AbortError';
  constructor() {
    super('aborted');
  }
}

function abortedDiagnostic(name: string): Diagnostic {
  return error('aborted', `layer ${name}: unpacking was interrupted`);
}

function toDiagnostic(e: unknown, name: string, readFailures: WeakSet<object>, compression: LayerCompression): Diagnostic {
  if (e instanceof LayerEntryError) {
    const hint = e.reason === 'layer-corrupt' ? CORRUPT_HINT : e.reason === 'layer-write-failed' ? 'check the free space and permissions of the cache folder' : UNSAFE_HINT;
    return error(e.reason, `layer ${name}: ${e.message}`, { hint });
  }
  if (e instanceof UnsupportedEntryError) return error('layer-unsupported-entry', `layer ${name}: ${e.message} at offset ${e.offset}`, { hint: 'orchestrator unpacks files, folders, links, devices and fifos' });
  if (e instanceof TarFormatError) return error('layer-corrupt', `layer ${name}: the tar stream is corrupt: ${e.message}`, { hint: CORRUPT_HINT });
  if (e instanceof AbortedError || (e instanceof Error && e.name === 'AbortError')) return abortedDiagnostic(name);
  if (typeof e === 'object' && e !== null && readFailures.has(e)) return error('layer-read-failed', `layer ${name}: cannot read the blob: ${message(e)}`);
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  if (typeof code === 'string' && code.startsWith('Z_')) return error('layer-corrupt', `layer ${name}: the ${compression} stream is corrupt: ${message(e)}`, { hint: CORRUPT_HINT });
  if (typeof code === 'string' && code.startsWith('ERR_ZSTD')) return error('layer-corrupt', `layer ${name}: the ${compression} stream is corrupt: ${message(e)}`, { hint: CORRUPT_HINT });
  throw e;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isDirectory();
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return false;
    throw e;
  }
}

async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
