import { ownNamespaceMapping, type NamespaceMapping } from '../core/id-map.js';

export type { NamespaceMapping };

/**
 * The user namespace this process runs in, as far as a Debian bootstrap cares (which tool and
 * mmdebstrap mode, debootstrap-source.ts): `initial` (real root), `subuid` (a complete fake root
 * without device nodes) or `single-id` (chown to any other id fails). Read from /proc/self/uid_map
 * by src/core/id-map.ts, the one reader of it.
 */
export function namespaceMapping(): NamespaceMapping {
  return ownNamespaceMapping();
}
