/**
 * A push parser for tar streams (POSIX ustar, pax, GNU long names, old v7), written for the layer
 * unpacker: it is fed decompressed chunks and calls its handler synchronously, with entry data as
 * views into those chunks, so nothing is copied. It is our own rather than tar-stream's because
 * pax values must stay bytes (a `SCHILY.xattr.security.capability` value is binary) and because the
 * unpacker wants a synchronous, allocation-light path per entry.
 *
 * Format errors throw TarFormatError; the unpacker turns them into a `layer-corrupt` Diagnostic.
 */

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo';

export interface TarEntry {
  /** The path as stored (after pax `path` / GNU long name), not yet normalised. */
  readonly name: string;
  readonly type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  /** Seconds since the epoch, fractional when a pax `mtime` gave more precision. */
  readonly mtime: number;
  /** Hardlink or symlink target. */
  readonly linkname: string;
  readonly devmajor: number;
  readonly devminor: number;
  /** Extended attributes from pax `SCHILY.xattr.<name>` records, values as bytes. */
  readonly xattrs: ReadonlyMap<string, Buffer>;
  /** Offset of the entry's header in the uncompressed stream (for messages). */
  readonly offset: number;
}

export interface TarHandler {
  /** A new entry; for files, `data` calls follow with exactly `size` bytes, then `entryEnd`. */
  entry(entry: TarEntry): void;
  /** A piece of the current file's content: a view valid only during the call. */
  data(chunk: Buffer): void;
  entryEnd(): void;
}

export class TarFormatError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = 'TarFormatError';
  }
}

const BLOCK = 512;
/** Pax and GNU long-name records larger than this are refused (a hostile size must not make us allocate it). */
const MAX_META_SIZE = 1 << 20;

type State = 'header' | 'data' | 'padding' | 'meta' | 'zero' | 'done';

interface Meta {
  kind: 'pax' | 'pax-global' | 'gnu-long-name' | 'gnu-long-link';
  buffer: Buffer;
  filled: number;
}

interface Pax {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  xattrs?: Map<string, Buffer>;
}

export class TarParser {
  readonly #handler: TarHandler;
  #state: State = 'header';
  /** Bytes consumed so far (offset in the uncompressed stream). */
  #position = 0;
  readonly #header = Buffer.alloc(BLOCK);
  #headerFilled = 0;
  #remaining = 0;
  #padding = 0;
  #meta: Meta | undefined;
  #pax: Pax | undefined;
  #globalPax: Pax | undefined;
  #longName: string | undefined;
  #longLink: string | undefined;
  #entryOffset = 0;

  constructor(handler: TarHandler) {
    this.#handler = handler;
  }

  /** Whether the end-of-archive marker was seen. */
  get finished(): boolean {
    return this.#state === 'done';
  }

  push(chunk: Buffer): void {
    let at = 0;
    const length = chunk.length;
    while (at < length) {
      switch (this.#state) {
        case 'header':
        case 'zero': {
          if (this.#headerFilled === 0 && length - at >= BLOCK) {
            const block = chunk.subarray(at, at + BLOCK);
            at += BLOCK;
            this.#position += BLOCK;
            this.#onHeader(block);
          } else {
            const n = Math.min(BLOCK - this.#headerFilled, length - at);
            chunk.copy(this.#header, this.#headerFilled, at, at + n);
            this.#headerFilled += n;
            at += n;
            this.#position += n;
            if (this.#headerFilled === BLOCK) {
              this.#headerFilled = 0;
              this.#onHeader(this.#header);
            }
          }
          break;
        }
        case 'data': {
          const n = Math.min(this.#remaining, length - at);
          this.#handler.data(chunk.subarray(at, at + n));
          at += n;
          this.#position += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#endData();
          break;
        }
        case 'meta': {
          const meta = this.#meta as Meta;
          const n = Math.min(this.#remaining, length - at);
          chunk.copy(meta.buffer, meta.filled, at, at + n);
          meta.filled += n;
          at += n;
          this.#position += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            this.#onMeta(meta);
            this.#meta = undefined;
            this.#startPadding(meta.buffer.length);
          }
          break;
        }
        case 'padding': {
          const n = Math.min(this.#padding, length - at);
          at += n;
          this.#position += n;
          this.#padding -= n;
          if (this.#padding === 0) this.#state = 'header';
          break;
        }
        case 'done':
          // Whatever follows the end-of-archive marker (block padding) is ignored, as tar does.
          this.#position += length - at;
          return;
      }
    }
  }

  /** The input ended: throws when it ended inside an entry. */
  end(): void {
    if (this.#state === 'done' || this.#state === 'zero') return;
    if (this.#state === 'header' && this.#headerFilled === 0 && this.#meta === undefined && this.#pax === undefined && this.#longName === undefined) return;
    throw new TarFormatError(`the tar stream ends in the middle of an entry (after ${this.#position} bytes)`, this.#position);
  }

  #endData(): void {
    this.#handler.entryEnd();
    this.#startPadding(this.#lastSize);
  }

  #lastSize = 0;

  #startPadding(size: number): void {
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    this.#padding = pad;
    this.#state = pad > 0 ? 'padding' : 'header';
  }

  // Long on purpose: the header dispatch of the parser's hot loop (end blocks, checksums, PAX and GNU
  // headers, entry types) in one switch, with no call per entry.
  #onHeader(block: Buffer): void {
    const headerOffset = this.#position - BLOCK;
    if (isZeroBlock(block)) {
      // One zero block, then another (or the end of the input): end of archive.
      this.#state = this.#state === 'zero' ? 'done' : 'zero';
      return;
    }
    if (this.#state === 'zero') throw new TarFormatError(`invalid tar header at offset ${headerOffset}: data after an end-of-archive block`, headerOffset);
    if (!checksumOk(block)) throw new TarFormatError(`invalid tar header at offset ${headerOffset}: checksum mismatch`, headerOffset);

    const typeflag = block[156] ?? 0;
    const size = readNumber(block, 124, 12, headerOffset, 'size');
    switch (typeflag) {
      case 0x78: // 'x' pax extended header
      case 0x67: // 'g' pax global header
      case 0x4c: // 'L' GNU long name
      case 0x4b: {
        // 'K' GNU long link name
        if (size > MAX_META_SIZE) throw new TarFormatError(`invalid tar header at offset ${headerOffset}: a ${size}-byte extended header is too large`, headerOffset);
        const kind = typeflag === 0x78 ? 'pax' : typeflag === 0x67 ? 'pax-global' : typeflag === 0x4c ? 'gnu-long-name' : 'gnu-long-link';
        const meta: Meta = { kind, buffer: Buffer.allocUnsafe(size), filled: 0 };
        if (size === 0) {
          this.#onMeta(meta);
          this.#state = 'header';
          return;
        }
        this.#meta = meta;
        this.#remaining = size;
        this.#state = 'meta';
        return;
      }
    }

    const type = entryType(typeflag);
    if (type === undefined) {
      const flag = typeflag >= 0x20 && typeflag < 0x7f ? `'${String.fromCharCode(typeflag)}'` : `0x${typeflag.toString(16)}`;
      throw new UnsupportedEntryError(`unsupported tar entry type ${flag}`, headerOffset);
    }

    const pax = mergePax(this.#globalPax, this.#pax);
    this.#pax = undefined;

    let name = this.#longName ?? readString(block, 0, 100);
    if (this.#longName === undefined && isUstar(block)) {
      const prefix = readString(block, 345, 155);
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    this.#longName = undefined;
    if (pax?.path !== undefined) name = pax.path;

    let linkname = this.#longLink ?? readString(block, 157, 100);
    this.#longLink = undefined;
    if (pax?.linkpath !== undefined) linkname = pax.linkpath;

    let resolvedType: TarEntryType = type;
    // Old tars mark folders by a trailing slash on a regular-file entry.
    if (type === 'file' && typeflag !== 0x37 && name.endsWith('/')) resolvedType = 'directory';

    const entrySize = pax?.size ?? size;
    const entry: TarEntry = {
      name,
      type: resolvedType,
      mode: readNumber(block, 100, 8, headerOffset, 'mode') & 0o7777,
      uid: pax?.uid ?? readNumber(block, 108, 8, headerOffset, 'uid'),
      gid: pax?.gid ?? readNumber(block, 116, 8, headerOffset, 'gid'),
      size: resolvedType === 'file' ? entrySize : 0,
      mtime: pax?.mtime ?? readNumber(block, 136, 12, headerOffset, 'mtime'),
      linkname,
      devmajor: readNumber(block, 329, 8, headerOffset, 'devmajor'),
      devminor: readNumber(block, 337, 8, headerOffset, 'devminor'),
      xattrs: pax?.xattrs ?? EMPTY_XATTRS,
      offset: headerOffset,
    };
    this.#entryOffset = headerOffset;
    this.#handler.entry(entry);
    // Content follows files only: like Go's archive/tar and GNU tar, links, devices, fifos and
    // folders are header-only whatever their size field says.
    if (resolvedType === 'file' && entrySize > 0) {
      this.#remaining = entrySize;
      this.#lastSize = entrySize;
      this.#state = 'data';
      return;
    }
    if (resolvedType === 'file') this.#handler.entryEnd();
    this.#state = 'header';
  }

  #onMeta(meta: Meta): void {
    switch (meta.kind) {
      case 'pax':
        this.#pax = parsePax(meta.buffer, this.#position);
        return;
      case 'pax-global':
        this.#globalPax = mergePax(this.#globalPax, parsePax(meta.buffer, this.#position));
        return;
      case 'gnu-long-name':
        this.#longName = cString(meta.buffer);
        return;
      case 'gnu-long-link':
        this.#longLink = cString(meta.buffer);
        return;
    }
  }

  /** Offset of the most recent entry header. */
  get entryOffset(): number {
    return this.#entryOffset;
  }
}

/** An entry type orchestrator does not unpack (GNU sparse files, volume labels, ...). */
export class UnsupportedEntryError extends TarFormatError {
  override name = 'UnsupportedEntryError';
}

const EMPTY_XATTRS: ReadonlyMap<string, Buffer> = new Map();

function entryType(typeflag: number): TarEntryType | undefined {
  switch (typeflag) {
    case 0: // old v7 '\0'
    case 0x30: // '0'
    case 0x37: // '7' contiguous file
      return 'file';
    case 0x31:
      return 'hardlink';
    case 0x32:
      return 'symlink';
    case 0x33:
      return 'character-device';
    case 0x34:
      return 'block-device';
    case 0x35:
      return 'directory';
    case 0x36:
      return 'fifo';
    default:
      return undefined;
  }
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i += 1) if (block[i] !== 0) return false;
  return true;
}

function checksumOk(block: Buffer): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i += 1) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  const stored = parseOctal(block, 148, 8);
  return stored === unsigned || stored === signed;
}

function isUstar(block: Buffer): boolean {
  // POSIX "ustar\0"; GNU's "ustar  \0" has no prefix field.
  return block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 && block[260] === 0x61 && block[261] === 0x72 && block[262] === 0;
}

function readString(block: Buffer, start: number, length: number): string {
  let end = start;
  const limit = start + length;
  while (end < limit && block[end] !== 0) end += 1;
  return block.toString('utf8', start, end);
}

function cString(buffer: Buffer): string {
  const nul = buffer.indexOf(0);
  return buffer.toString('utf8', 0, nul === -1 ? buffer.length : nul);
}

function parseOctal(block: Buffer, start: number, length: number): number | undefined {
  let i = start;
  const end = start + length;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i += 1;
  let value = 0;
  let digits = 0;
  for (; i < end; i += 1) {
    const c = block[i] as number;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return undefined;
    value = value * 8 + (c - 0x30);
    digits += 1;
  }
  return digits === 0 ? 0 : value;
}

function readNumber(block: Buffer, start: number, length: number, offset: number, field: string): number {
  const first = block[start] as number;
  if (first & 0x80) {
    // GNU base-256: big-endian, the top bit of the first byte is the marker; negative values are refused.
    if (first & 0x40) throw new TarFormatError(`invalid tar header at offset ${offset}: negative ${field}`, offset);
    let value = first & 0x3f;
    for (let i = start + 1; i < start + length; i += 1) value = value * 256 + (block[i] as number);
    if (!Number.isSafeInteger(value)) throw new TarFormatError(`invalid tar header at offset ${offset}: ${field} out of range`, offset);
    return value;
  }
  const value = parseOctal(block, start, length);
  if (value === undefined) throw new TarFormatError(`invalid tar header at offset ${offset}: ${field} is not an octal number`, offset);
  return value;
}

function parsePax(buffer: Buffer, offset: number): Pax {
  const pax: Pax = {};
  let at = 0;
  while (at < buffer.length) {
    if (buffer[at] === 0) break; // NUL padding
    const space = buffer.indexOf(0x20, at);
    if (space === -1) throw new TarFormatError(`invalid pax header before offset ${offset}: a record has no length`, offset);
    const length = Number(buffer.toString('latin1', at, space));
    if (!Number.isInteger(length) || length <= space - at + 1 || at + length > buffer.length || buffer[at + length - 1] !== 0x0a)
      throw new TarFormatError(`invalid pax header before offset ${offset}: a record's length is wrong`, offset);
    const equals = buffer.indexOf(0x3d, space + 1);
    if (equals === -1 || equals >= at + length) throw new TarFormatError(`invalid pax header before offset ${offset}: a record has no '='`, offset);
    const key = buffer.toString('utf8', space + 1, equals);
    const value = buffer.subarray(equals + 1, at + length - 1);
    applyPaxRecord(pax, key, value, offset);
    at += length;
  }
  return pax;
}

function paxNumber(key: string, value: Buffer, offset: number): number {
  const text = value.toString('latin1');
  const n = Number(text);
  if (text === '' || !Number.isFinite(n) || n < 0) throw new TarFormatError(`invalid pax header before offset ${offset}: ${key}=${text} is not a number`, offset);
  return n;
}

function applyPaxRecord(pax: Pax, key: string, value: Buffer, offset: number): void {
  switch (key) {
    case 'path':
      pax.path = value.toString('utf8');
      return;
    case 'linkpath':
      pax.linkpath = value.toString('utf8');
      return;
    case 'size':
      pax.size = Math.trunc(paxNumber(key, value, offset));
      return;
    case 'uid':
      pax.uid = Math.trunc(paxNumber(key, value, offset));
      return;
    case 'gid':
      pax.gid = Math.trunc(paxNumber(key, value, offset));
      return;
    case 'mtime':
      pax.mtime = paxNumber(key, value, offset);
      return;
  }
  if (key.startsWith('SCHILY.xattr.')) {
    pax.xattrs ??= new Map();
    pax.xattrs.set(key.slice('SCHILY.xattr.'.length), Buffer.from(value));
    return;
  }
  if (key.startsWith('GNU.sparse.')) throw new UnsupportedEntryError(`unsupported tar entry: GNU sparse file (pax ${key})`, offset);
  // Other records (atime, ctime, uname, gname, comment, charset, ...) do not change what is unpacked.
}

function mergePax(global: Pax | undefined, local: Pax | undefined): Pax | undefined {
  if (global === undefined) return local;
  if (local === undefined) return global;
  const xattrs = global.xattrs || local.xattrs ? new Map([...(global.xattrs ?? []), ...(local.xattrs ?? [])]) : undefined;
  return { ...global, ...local, ...(xattrs ? { xattrs } : {}) };
}
