/**
 * Layer fixtures for tests: tar layers built with tar-stream from a list of entries, gzipped or
 * not, with their digests; a sandbox (store + canary tree) and snapshots of a file tree for
 * "nothing changed outside the layer folder" assertions.
 */
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack, type Header } from 'tar-stream';
import type { Digest } from '../../src/core/digest.js';
import { isErrno, nativeAddon } from '../../src/native/addon.js';

export interface EntrySpec {
  readonly name: string;
  readonly type?: Header['type'];
  readonly content?: string | Buffer;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly mtime?: Date;
  readonly linkname?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
  /** pax records, e.g. `{'SCHILY.xattr.user.note': 'hi'}`. */
  readonly pax?: Record<string, string>;
}

export const DEFAULT_MTIME = new Date('2024-01-02T03:04:05Z');

/** An uncompressed tar of the entries, in order. */
export async function buildTar(entries: readonly EntrySpec[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const content = e.content === undefined ? undefined : Buffer.from(e.content);
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? DEFAULT_MTIME,
      uname: '',
      gname: '',
      linkname: e.linkname ?? null,
      devmajor: e.devmajor ?? 0,
      devminor: e.devminor ?? 0,
      pax: e.pax ?? null,
      size: type === 'file' ? (content?.length ?? 0) : 0,
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (type === 'file') p.entry(header as Header, content ?? Buffer.alloc(0), cb);
      else p.entry(header as Header, cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export interface BuiltLayer {
  /** What goes to the unpacker (gzipped unless asked otherwise). */
  readonly blob: Buffer;
  readonly tar: Buffer;
  readonly diffId: Digest;
  readonly digest: Digest;
  readonly mediaType: string;
}

export function sha256(data: Buffer): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

export async function buildLayer(entries: readonly EntrySpec[], options: { gzip?: boolean } = {}): Promise<BuiltLayer> {
  return layerFromTar(await buildTar(entries), options);
}

export function layerFromTar(tar: Buffer, options: { gzip?: boolean } = {}): BuiltLayer {
  const gzip = options.gzip ?? true;
  const blob = gzip ? gzipSync(tar) : tar;
  return {
    blob,
    tar,
    diffId: sha256(tar),
    digest: sha256(blob),
    mediaType: gzip ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
  };
}

/**
 * A temp sandbox: `store/` (with `tmp/` and `layers/`), a `canary/` tree with an `etc/passwd`
 * that the attacks aim at, and `blobs/` for layer files. The layer folders sit at
 * `store/layers/<hex>`, so `../../etc/passwd` from a layer root or from its temp folder lands in
 * the sandbox, never on the host.
 */
export interface Sandbox {
  readonly root: string;
  readonly tmpDir: string;
  readonly layersDir: string;
  destination(diffId: Digest): string;
  /** Write a blob to a file and return its path. */
  writeBlob(layer: BuiltLayer, name?: string): string;
  cleanup(): void;
}

export function makeSandbox(prefix = 'orch-layers-'): Sandbox {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const tmpDir = join(root, 'store', 'tmp');
  const layersDir = join(root, 'store', 'layers');
  mkdirSync(tmpDir, { recursive: true });
  mkdirSync(layersDir, { recursive: true });
  mkdirSync(join(root, 'store', 'etc'), { recursive: true });
  writeFileSync(join(root, 'store', 'etc', 'passwd'), 'canary:x:0:0::/:/bin/sh\n');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', 'passwd'), 'canary:x:0:0::/:/bin/sh\n');
  mkdirSync(join(root, 'blobs'));
  return {
    root,
    tmpDir,
    layersDir,
    destination: (diffId) => join(layersDir, diffId.slice('sha256:'.length)),
    writeBlob(layer, name = layer.digest.slice('sha256:'.length)) {
      const path = join(root, 'blobs', name);
      writeFileSync(path, layer.blob);
      return path;
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

export interface TreeEntry {
  readonly type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size?: number;
  readonly sha256?: string;
  readonly link?: string;
  readonly rdev?: number;
  readonly xattrs?: Record<string, string>;
}

/**
 * Every path under `root` (relative, sorted) with type, mode, owner, size, content digest, link
 * target and device numbers; with `xattrs`, also the extended attributes (hex values). Mtimes are
 * left out unless asked, since folders' change when their contents do.
 */
export function snapshotTree(root: string, options: { xattrs?: boolean; mtimes?: boolean; exclude?: readonly string[] } = {}): Record<string, TreeEntry & { mtimeMs?: number }> {
  const out: Record<string, TreeEntry & { mtimeMs?: number }> = {};
  const addon = options.xattrs ? nativeAddon() : undefined;
  const walk = (rel: string): void => {
    const abs = rel === '' ? root : join(root, rel);
    const s = lstatSync(abs);
    const type: TreeEntry['type'] = s.isFile() ? 'file' : s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'symlink' : s.isCharacterDevice() ? 'char' : s.isBlockDevice() ? 'block' : s.isFIFO() ? 'fifo' : 'socket';
    const entry: TreeEntry & { mtimeMs?: number } = {
      type,
      mode: s.mode & 0o7777,
      uid: s.uid,
      gid: s.gid,
      ...(type === 'file' ? { size: s.size, sha256: createHash('sha256').update(readFileSync(abs)).digest('hex') } : {}),
      ...(type === 'symlink' ? { link: readlinkSync(abs) } : {}),
      ...(type === 'char' || type === 'block' ? { rdev: s.rdev } : {}),
      ...(options.mtimes && type !== 'dir' ? { mtimeMs: s.mtimeMs } : {}),
    };
    if (addon) {
      const names = addon.llistxattr(abs).sort();
      if (names.length > 0) (entry as { xattrs?: Record<string, string> }).xattrs = Object.fromEntries(names.map((n) => [n, addon.lgetxattr(abs, n).toString('hex')]));
    }
    out[rel === '' ? '.' : rel] = entry;
    if (type === 'dir') for (const name of readdirSync(abs).sort()) {
      const child = rel === '' ? name : `${rel}/${name}`;
      if (options.exclude?.includes(child)) continue;
      walk(child);
    }
  };
  walk('');
  return out;
}

/** The host files the attacks aim at, to prove they are untouched. */
export function hostCanaries(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const path of ['/etc/passwd', '/etc/shadow']) {
    try {
      out[path] = createHash('sha256').update(readFileSync(path)).digest('hex') + ':' + lstatSync(path).mtimeMs;
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e;
      out[path] = 'missing';
    }
  }
  return out;
}
