/**
 * The reference for overlay views: GNU tar does not know OCI whiteouts, so `applyWhiteouts` applies
 * them before each `tar -x` (`.wh.NAME` deletes NAME from the layers below, `.wh..wh..opq` empties
 * its folder); `.wh.*` entries are then excluded from the extraction.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join, posix } from 'node:path';

/** A shell script that lists a tree: path, type, mode, owner, size, link target; then sha256 sums. */
export const DESCRIBE = `cd "$1" && find . -mindepth 1 -printf '%p\\t%y\\t%m\\t%U\\t%G\\t%s\\t%l\\n' | LC_ALL=C sort && echo '---' && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum`;

/** path → "type mode uid gid size link sha256" (size only for files: folder sizes differ by file system). */
export function parseDescription(text: string): Record<string, string> {
  const [listing = '', sums = ''] = text.split('---\n');
  const hashes = new Map<string, string>();
  for (const line of sums.split('\n').filter(Boolean)) hashes.set(line.slice(66), line.slice(0, 64));
  const out: Record<string, string> = {};
  for (const line of listing.split('\n').filter(Boolean)) {
    const [path = '', type = '', mode = '', uid = '', gid = '', size = '', link = ''] = line.split('\t');
    out[path] = [type, mode, uid, gid, type === 'f' ? size : '-', link || '-', hashes.get(path) ?? '-'].join(' ');
  }
  return out;
}

/** The OCI whiteout rule, applied to a tree before a layer is extracted over it with GNU tar. */
export function applyWhiteouts(root: string, entries: ReadonlyArray<{ readonly name: string }>): void {
  for (const { name } of entries) {
    const path = posix.normalize(name.replace(/^\/+/, ''));
    const base = posix.basename(path);
    const dir = join(root, posix.dirname(path));
    if (base === '.wh..wh..opq') {
      for (const child of readdirSync(dir)) rmSync(join(dir, child), { recursive: true, force: true });
    } else if (base.startsWith('.wh.')) {
      rmSync(join(dir, base.slice(4)), { recursive: true, force: true });
    }
  }
}
