import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { lstat, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { error } from '../core/diagnostic.js';
import { DiagnosticError } from '../core/diagnostic-error.js';
import { digestHex, shortDigest, type Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';

const WRITE_BATCH = 1 << 20;

export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
  readonly path: string;
  /** False when the blob was already in the store (someone else wrote it first). */
  readonly written: boolean;
}

export type BlobState = 'missing' | 'valid' | 'corrupt';

export interface PutOptions {
  /** Called with the running byte count as data arrives. */
  readonly onProgress?: (bytes: number) => void;
  readonly signal?: AbortSignal | undefined;
}

/** Hashes a file; undefined if it does not exist. */
async function hashFile(path: string, signal?: AbortSignal): Promise<{ digest: Digest; size: number } | undefined> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    const stream = createReadStream(path, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return { digest: `sha256:${hash.digest('hex')}` as Digest, size };
}

async function syncDir(path: string): Promise<void> {
  const dir = await open(path, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * An in-progress write of one blob into a private temp file under the store's `tmp/`. Bytes are
 * hashed as they arrive; `commit` verifies digest and size, fsyncs and renames into
 * `blobs/sha256/<hex>`. `restart` starts over (a server ignored a Range request); `written` is
 * where a resumed transfer continues.
 */
export class BlobWriter {
  #hash: Hash = createHash('sha256');
  #written = 0;
  #closed = false;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  private constructor(
    readonly digest: Digest,
    readonly expectedSize: number | undefined,
    readonly tempPath: string,
    readonly finalPath: string,
    private readonly handle: FileHandle,
  ) {}

  static async create(store: BlobStore, digest: Digest, expectedSize: number | undefined): Promise<BlobWriter> {
    const tempPath = join(store.tmpDir, `${process.pid}-${randomBytes(6).toString('hex')}-blob-${digestHex(digest).slice(0, 16)}`);
    const handle = await open(tempPath, 'wx', 0o644);
    return new BlobWriter(digest, expectedSize, tempPath, store.path(digest), handle);
  }

  get written(): number {
    return this.#written;
  }

  /**
   * Appends a chunk (hashed now, written in batches of about 1 MiB). Throws a DiagnosticError
   * (`blob-size-mismatch`) past the expected size.
   */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.expectedSize !== undefined && this.#written + chunk.length > this.expectedSize) {
      throw new DiagnosticError(
        error('blob-size-mismatch', `blob ${shortDigest(this.digest)} is larger than the ${this.expectedSize} bytes its manifest declares`, {
          hint: 'the registry served different content than the manifest describes; try again or report it to the registry owner',
        }),
      );
    }
    this.#hash.update(chunk);
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    this.#written += chunk.length;
    if (this.#pendingBytes >= WRITE_BATCH) await this.flush();
  }

  /** Writes the batched bytes to the temp file (call before relying on its content on disk). */
  async flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const chunks = this.#pending;
    const position = this.#written - this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    const { bytesWritten } = await this.handle.writev(chunks, position);
    const total = chunks.reduce((n, c) => n + c.length, 0);
    // Short writes are rare; finish them one by one.
    if (bytesWritten < total) {
      const rest = Buffer.concat(chunks).subarray(bytesWritten);
      let off = 0;
      while (off < rest.length) {
        const r = await this.handle.write(rest, off, rest.length - off, position + bytesWritten + off);
        off += r.bytesWritten;
      }
    }
  }

  /** Drops what was written so far and starts over at byte 0. */
  async restart(): Promise<void> {
    this.#pending = [];
    this.#pendingBytes = 0;
    await this.handle.truncate(0);
    this.#hash = createHash('sha256');
    this.#written = 0;
  }

  /** Verifies, fsyncs and publishes. On any failure the temp file is removed. */
  async commit(): Promise<Result<BlobInfo>> {
    try {
      const actual = `sha256:${this.#hash.digest('hex')}` as Digest;
      if (this.expectedSize !== undefined && this.#written !== this.expectedSize) {
        await this.discard();
        return fail(
          error('blob-size-mismatch', `blob ${shortDigest(this.digest)} has ${this.#written} bytes, its manifest declares ${this.expectedSize}`, {
            hint: 'the registry served different content than the manifest describes; try again or report it to the registry owner',
          }),
        );
      }
      if (actual !== this.digest) {
        await this.discard();
        return fail(
          error('digest-mismatch', `blob ${shortDigest(this.digest)} failed verification: its content hashes to ${shortDigest(actual)}`, {
            hint: 'the registry (or something between it and you) served wrong bytes; nothing was stored. Try again.',
          }),
        );
      }
      await this.flush();
      await this.handle.sync();
      await this.handle.close();
      this.#closed = true;
      await rename(this.tempPath, this.finalPath);
      await syncDir(join(this.finalPath, '..'));
      return ok({ digest: this.digest, size: this.#written, path: this.finalPath, written: true });
    } catch (e) {
      await this.discard();
      throw e;
    }
  }

  /** Closes and removes the temp file. Safe to call more than once. */
  async discard(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      await this.handle.close().catch(() => undefined);
    }
    await rm(this.tempPath, { force: true });
  }
}

/**
 * Verified, content-addressed blobs under `ROOT/blobs/sha256/<hex>`. Files appear only by rename
 * after verification, so a blob that exists was complete when written; two processes writing the
 * same blob both succeed (the second rename replaces identical bytes). `verify` re-hashes and
 * deletes a blob that was damaged since.
 */
export class BlobStore {
  constructor(
    /** `ROOT/blobs/sha256` */
    readonly dir: string,
    /** The store's `tmp/`, on the same file system. */
    readonly tmpDir: string,
  ) {}

  path(digest: Digest): string {
    return join(this.dir, digestHex(digest));
  }

  /** Present (not re-hashed; see `verify`). */
  async has(digest: Digest): Promise<boolean> {
    try {
      return (await lstat(this.path(digest))).isFile();
    } catch {
      return false;
    }
  }

  /**
   * Re-hashes the blob. A blob whose content (or size, when given) does not match is deleted and
   * reported `corrupt`, so that the caller fetches it again.
   */
  async verify(digest: Digest, options: { size?: number | undefined; signal?: AbortSignal | undefined } = {}): Promise<BlobState> {
    const path = this.path(digest);
    try {
      const st = await lstat(path);
      if (!st.isFile() || (options.size !== undefined && st.size !== options.size)) {
        await rm(path, { force: true, recursive: true });
        return 'corrupt';
      }
    } catch {
      return 'missing';
    }
    const h = await hashFile(path, options.signal);
    if (h === undefined) return 'missing';
    if (h.digest !== digest) {
      await rm(path, { force: true });
      return 'corrupt';
    }
    return 'valid';
  }

  /**
   * A read stream of a verified blob, or undefined when it is missing or was corrupt (then it has
   * been deleted: fetch it again).
   */
  async open(digest: Digest, options: { size?: number | undefined; signal?: AbortSignal | undefined } = {}): Promise<ReadStream | undefined> {
    const state = await this.verify(digest, options);
    if (state !== 'valid') return undefined;
    return createReadStream(this.path(digest), options.signal ? { signal: options.signal } : {});
  }

  /** Starts a write; the caller feeds it and commits or discards it. */
  begin(digest: Digest, expectedSize?: number): Promise<BlobWriter> {
    return BlobWriter.create(this, digest, expectedSize);
  }

  /**
   * Stores a blob from a stream, verifying digest and size. A valid blob already present is
   * success (`written: false`) and the stream is not read. Nothing is left behind on failure or abort.
   */
  async put(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    expectedDigest: Digest,
    expectedSize: number | undefined,
    options: PutOptions = {},
  ): Promise<Result<BlobInfo>> {
    if ((await this.verify(expectedDigest, { size: expectedSize })) === 'valid') {
      const size = (await lstat(this.path(expectedDigest))).size;
      return ok({ digest: expectedDigest, size, path: this.path(expectedDigest), written: false });
    }
    const writer = await this.begin(expectedDigest, expectedSize);
    try {
      for await (const chunk of source) {
        options.signal?.throwIfAborted();
        await writer.write(chunk);
        options.onProgress?.(writer.written);
      }
      options.signal?.throwIfAborted();
    } catch (e) {
      await writer.discard();
      if (e instanceof DiagnosticError) return fail(e.diagnostic);
      throw e;
    }
    return writer.commit();
  }

  /** Stores bytes held in memory (manifests, configs, test images). */
  putBytes(bytes: Uint8Array, expectedDigest: Digest, options: PutOptions = {}): Promise<Result<BlobInfo>> {
    return this.put([bytes], expectedDigest, bytes.length, options);
  }
}
