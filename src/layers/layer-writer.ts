/**
 * Writes the entries of one tar layer into a folder in overlay format, refusing anything that
 * would write outside it. It keeps a model of every path it has made (the folder is fresh and
 * private to this unpack, so the model is the truth): an entry may only go below folders it
 * made, never through a symlink, and a hardlink may only point at an earlier entry.
 *
 * Every call is synchronous: the calls are short system calls on a local file system, and the
 * unpacker interleaves them with asynchronous decompression (see unpack-layer.ts). Failures throw
 * LayerEntryError, which the unpacker turns into a Diagnostic.
 */
import {
  closeSync,
  constants as fsConstants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  chmodSync,
  chownSync,
  utimesSync,
} from 'node:fs';
import { nativeAddon, type NativeAddon } from '../native/addon.js';
import type { TarEntry, TarHandler } from './tar-parser.js';
import { inChildUserNamespace, isOverlayXattr, overlayXattrPrefix, singleIdNamespace } from '../core/id-map.js';

export type LayerEntryReason = 'layer-unsafe-path' | 'layer-unsafe-link' | 'layer-unsafe-device' | 'layer-corrupt' | 'layer-write-failed';

/** The first bad entry: which, and why. */
export class LayerEntryError extends Error {
  constructor(
    readonly reason: LayerEntryReason,
    readonly entry: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`entry '${entry}' ${detail}`, options);
    this.name = 'LayerEntryError';
  }
}

type Kind = 'dir' | 'file' | 'symlink' | 'other';

interface DirMeta {
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  xattrs?: ReadonlyMap<string, Buffer>;
  opaque?: boolean;
}

export interface LayerWriterOptions {
  /** Whether device nodes may be made and owners set (root). Device entries fail otherwise. */
  readonly privileged: boolean;
}

export interface LayerStats {
  entries: number;
  files: number;
  whiteouts: number;
  opaqueDirs: number;
  /** Entries owned by an id other than 0 that were stored as owned by 0 (single-id mode). */
  ownersFolded: number;
  /** Device files other than whiteouts left out (no user namespace may create them). */
  devicesSkipped: number;
}

const OPAQUE = '.wh..wh..opq';
const WHITEOUT_PREFIX = '.wh.';
const OPEN_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

export class LayerWriter implements TarHandler {
  readonly #root: string;
  readonly #privileged: boolean;
  readonly #addon: NativeAddon;
  /** Relative path ('' is the root) → what it is. */
  readonly #nodes = new Map<string, Kind>([['', 'dir']]);
  /** Folder metadata, applied deepest first at the end so their mtimes survive their contents. */
  readonly #dirs = new Map<string, DirMeta>();
  #fd = -1;
  #current: TarEntry | undefined;
  #currentPath = '';
  #discard = false;
  readonly stats: LayerStats = { entries: 0, files: 0, whiteouts: 0, opaqueDirs: 0, ownersFolded: 0, devicesSkipped: 0 };
  /** In a user namespace that maps id 0 only (single-id mode): every owner becomes 0. */
  readonly #singleId = singleIdNamespace();
  readonly #userns = inChildUserNamespace();

  constructor(root: string, options: LayerWriterOptions) {
    this.#root = root;
    this.#privileged = options.privileged;
    this.#addon = nativeAddon();
  }

  entry(entry: TarEntry): void {
    this.stats.entries += 1;
    this.#current = entry;
    this.#discard = false;
    const parts = splitSafe(entry.name, entry.name);
    const base = parts[parts.length - 1];
    if (base !== undefined && base.startsWith(WHITEOUT_PREFIX)) {
      this.#discard = true;
      this.#whiteout(entry, parts, base);
      return;
    }
    const rel = parts.join('/');
    if (rel === '') {
      if (entry.type !== 'directory') throw new LayerEntryError('layer-unsafe-path', entry.name, `the layer's root must be a folder, not a ${entry.type}`);
      this.#dirs.set('', { ...this.#dirs.get(''), ...dirMeta(entry) });
      this.#discard = true;
      return;
    }
    this.#ensureParents(entry.name, parts);
    const path = `${this.#root}/${rel}`;
    switch (entry.type) {
      case 'directory':
        this.#replace(rel, path, 'dir');
        if (this.#nodes.get(rel) !== 'dir') {
          this.#fs(entry, () => mkdirSync(path, 0o700));
          this.#nodes.set(rel, 'dir');
        }
        this.#dirs.set(rel, { ...this.#dirs.get(rel), ...dirMeta(entry) });
        this.#discard = true;
        return;
      case 'file':
        this.#replace(rel, path, 'file');
        this.#fd = this.#fs(entry, () => openSync(path, OPEN_FLAGS, 0o600));
        this.#currentPath = path;
        this.#nodes.set(rel, 'file');
        this.stats.files += 1;
        return;
      case 'hardlink': {
        const target = this.#hardlinkTarget(entry);
        this.#discard = true;
        if (target === rel) return;
        this.#replace(rel, path, 'file');
        this.#fs(entry, () => linkSync(`${this.#root}/${target}`, path));
        this.#nodes.set(rel, this.#nodes.get(target) ?? 'file');
        return;
      }
      case 'symlink':
        this.#replace(rel, path, 'symlink');
        this.#fs(entry, () => symlinkSync(entry.linkname, path));
        this.#nodes.set(rel, 'symlink');
        this.#discard = true;
        this.#finishNode(entry, path, false);
        return;
      case 'character-device':
      case 'block-device':
        if (!this.#privileged) throw new LayerEntryError('layer-unsafe-device', entry.name, `is a ${entry.type.replace('-', ' ')} (${entry.devmajor}:${entry.devminor}); only root may create device files`);
        if (this.#userns) {
          // No user namespace may make a device other than 0/0 (a whiteout): left out and counted;
          // a container's /dev is bound from the host at run time anyway.
          this.stats.devicesSkipped += 1;
          this.#discard = true;
          return;
        }
        this.#replace(rel, path, 'other');
        this.#fs(entry, () =>
          this.#addon.mknod(path, (entry.type === 'character-device' ? this.#addon.constants.S_IFCHR : this.#addon.constants.S_IFBLK) | 0o600, entry.devmajor, entry.devminor),
        );
        this.#nodes.set(rel, 'other');
        this.#discard = true;
        this.#finishNode(entry, path, true);
        return;
      case 'fifo':
        this.#replace(rel, path, 'other');
        this.#fs(entry, () => this.#addon.mknod(path, this.#addon.constants.S_IFIFO | 0o600, 0, 0));
        this.#nodes.set(rel, 'other');
        this.#discard = true;
        this.#finishNode(entry, path, true);
        return;
    }
  }

  data(chunk: Buffer): void {
    if (this.#discard || this.#fd < 0) return;
    const fd = this.#fd;
    let at = 0;
    while (at < chunk.length) {
      const entry = this.#current as TarEntry;
      at += this.#fs(entry, () => writeSync(fd, chunk, at, chunk.length - at));
    }
  }

  entryEnd(): void {
    if (this.#discard || this.#fd < 0) return;
    const entry = this.#current as TarEntry;
    const fd = this.#fd;
    this.#fd = -1;
    try {
      this.#fs(entry, () => {
        // Owner first: chown clears setuid/setgid and file capabilities, so mode and xattrs follow it.
        if (this.#privileged) fchownSync(fd, ...this.#owner(entry.uid, entry.gid));
        fchmodSync(fd, entry.mode);
        this.#xattrs(this.#currentPath, entry.xattrs);
        futimesSync(fd, entry.mtime, entry.mtime);
      });
    } finally {
      closeSync(fd);
    }
  }

  /** Apply folder metadata, deepest first. Call once, after the last entry. */
  finish(): void {
    const paths = [...this.#dirs.keys()].sort((a, b) => depth(b) - depth(a));
    if (!this.#dirs.has('')) paths.push('');
    for (const rel of paths) {
      const meta = this.#dirs.get(rel) ?? {};
      const path = rel === '' ? this.#root : `${this.#root}/${rel}`;
      const name = rel === '' ? '.' : rel;
      this.#fsNamed(name, () => {
        if (this.#privileged && meta.uid !== undefined && meta.gid !== undefined) chownSync(path, ...this.#owner(meta.uid, meta.gid));
        // Implicit folders (and a root without an entry) get 0755, as tar and Docker give them.
        chmodSync(path, meta.mode ?? 0o755);
        if (meta.xattrs) this.#xattrs(path, meta.xattrs);
        if (meta.opaque) this.#addon.lsetxattr(path, `${overlayXattrPrefix()}opaque`, Buffer.from('y'));
        if (meta.mtime !== undefined) utimesSync(path, meta.mtime, meta.mtime);
      });
    }
  }

  /** Release the open file, if any (after a failure). */
  abort(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }

  #whiteout(entry: TarEntry, parts: string[], base: string): void {
    const parentParts = parts.slice(0, -1);
    this.#ensureParents(entry.name, parts);
    const parent = parentParts.join('/');
    if (base === OPAQUE) {
      this.#dirs.set(parent, { ...this.#dirs.get(parent), opaque: true });
      this.stats.opaqueDirs += 1;
      return;
    }
    // Other `.wh..wh.` names are aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): ignored, as Docker does.
    if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return;
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '' || name === '.' || name === '..') throw new LayerEntryError('layer-unsafe-path', entry.name, `is a whiteout of '${name}', which names no file`);
    const rel = parent === '' ? name : `${parent}/${name}`;
    const path = `${this.#root}/${rel}`;
    // Overlay's whiteout: a 0/0 character device, owned by root. Making one needs root too.
    if (!this.#privileged) throw new LayerEntryError('layer-unsafe-device', entry.name, 'is a whiteout; overlay whiteouts are device files and only root may create them');
    this.#replace(rel, path, 'other');
    this.#fs(entry, () => this.#addon.mknod(path, this.#addon.constants.S_IFCHR, 0, 0));
    this.#nodes.set(rel, 'other');
    this.stats.whiteouts += 1;
  }

  /** Make sure every folder above the entry exists and is a real folder this layer made. */
  #ensureParents(name: string, parts: string[]): void {
    let rel = '';
    for (let i = 0; i < parts.length - 1; i += 1) {
      rel = rel === '' ? (parts[i] as string) : `${rel}/${parts[i] as string}`;
      const kind = this.#nodes.get(rel);
      if (kind === 'dir') continue;
      if (kind === 'symlink') throw new LayerEntryError('layer-unsafe-path', name, `would be written through the symlink '${rel}' made earlier in the layer`);
      if (kind !== undefined) throw new LayerEntryError('layer-corrupt', name, `needs '${rel}' to be a folder, but an earlier entry made it a ${kind === 'file' ? 'file' : 'special file'}`);
      const path = `${this.#root}/${rel}`;
      // A folder the layer implies but does not list: 0755 whatever the umask.
      this.#fsNamed(name, () => {
        mkdirSync(path, 0o755);
        chmodSync(path, 0o755);
      });
      this.#nodes.set(rel, 'dir');
    }
  }

  /** Clear the way for a new entry at `rel`: last wins, except a folder over a folder (merged). */
  #replace(rel: string, path: string, kind: Kind): void {
    const existing = this.#nodes.get(rel);
    if (existing === undefined) return;
    if (existing === 'dir') {
      if (kind === 'dir') return;
      rmSync(path, { recursive: true, force: true });
      const prefix = `${rel}/`;
      for (const key of this.#nodes.keys()) if (key.startsWith(prefix)) this.#nodes.delete(key);
      for (const key of this.#dirs.keys()) if (key === rel || key.startsWith(prefix)) this.#dirs.delete(key);
    } else {
      unlinkSync(path);
    }
    this.#nodes.delete(rel);
  }

  #hardlinkTarget(entry: TarEntry): string {
    const parts = splitSafe(entry.linkname, entry.name, 'layer-unsafe-link');
    const target = parts.join('/');
    let rel = '';
    for (let i = 0; i < parts.length - 1; i += 1) {
      rel = rel === '' ? (parts[i] as string) : `${rel}/${parts[i] as string}`;
      const kind = this.#nodes.get(rel);
      if (kind === 'symlink') throw new LayerEntryError('layer-unsafe-link', entry.name, `is a hardlink to '${entry.linkname}', through the symlink '${rel}'`);
      if (kind !== 'dir') break;
    }
    const kind = this.#nodes.get(target);
    if (target === '' || kind === undefined || kind === 'dir' || !parentsAreDirs(this.#nodes, parts))
      throw new LayerEntryError('layer-unsafe-link', entry.name, `is a hardlink to '${entry.linkname}', which is not an earlier file of this layer`);
    return target;
  }

  #finishNode(entry: TarEntry, path: string, chmod: boolean): void {
    this.#fs(entry, () => {
      if (this.#privileged) lchownSync(path, ...this.#owner(entry.uid, entry.gid));
      if (chmod) chmodSync(path, entry.mode);
      this.#xattrs(path, entry.xattrs);
      lutimesSync(path, entry.mtime, entry.mtime);
    });
  }

  /** The owner to set: as given, or 0:0 in single-id mode (counted when that changes it). */
  #owner(uid: number, gid: number): [number, number] {
    if (!this.#singleId || (uid === 0 && gid === 0)) return [uid, gid];
    this.stats.ownersFolded += 1;
    return [0, 0];
  }

  #xattrs(path: string, xattrs: ReadonlyMap<string, Buffer>): void {
    if (xattrs.size === 0) return;
    for (const [name, value] of xattrs) {
      // Overlay's own attributes (opaque, redirect, metacopy, origin) come only from whiteouts:
      // a layer must not steer the overlay mount by smuggling them in.
      if (isOverlayXattr(name)) continue;
      if (!this.#privileged && (name.startsWith('trusted.') || name.startsWith('security.'))) continue;
      // In a user namespace (a build without root) trusted.* cannot be written, not even by its root.
      if (name.startsWith('trusted.') && inChildUserNamespace()) continue;
      this.#addon.lsetxattr(path, name, value);
    }
  }

  #fs<T>(entry: TarEntry, fn: () => T): T {
    return this.#fsNamed(entry.name, fn);
  }

  #fsNamed<T>(name: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof LayerEntryError) throw e;
      const message = e instanceof Error ? e.message : String(e);
      throw new LayerEntryError('layer-write-failed', name, `could not be written: ${message.replace(this.#root, '<layer>')}`, { cause: e });
    }
  }
}

/**
 * The entry's path as components: leading `/` neutralised (as GNU tar, Docker and containerd do:
 * `/etc/passwd` lands at `<layer>/etc/passwd`), `.` and empty components dropped, and `..`
 * refused outright (no legitimate layer needs it).
 */
function splitSafe(path: string, entry: string, reason: LayerEntryReason = 'layer-unsafe-path'): string[] {
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      const what = reason === 'layer-unsafe-link' ? `is a hardlink to '${path}', which has a '..' component` : `has a '..' component`;
      throw new LayerEntryError(reason, entry, what);
    }
    parts.push(part);
  }
  return parts;
}

function parentsAreDirs(nodes: ReadonlyMap<string, Kind>, parts: readonly string[]): boolean {
  let rel = '';
  for (let i = 0; i < parts.length - 1; i += 1) {
    rel = rel === '' ? (parts[i] as string) : `${rel}/${parts[i] as string}`;
    if (nodes.get(rel) !== 'dir') return false;
  }
  return true;
}

function dirMeta(entry: TarEntry): DirMeta {
  return { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, xattrs: entry.xattrs };
}

function depth(rel: string): number {
  if (rel === '') return 0;
  let n = 1;
  for (let i = 0; i < rel.length; i += 1) if (rel.charCodeAt(i) === 47) n += 1;
  return n;
}
