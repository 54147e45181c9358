import { readFileSync } from 'node:fs';

/** One line of /proc/PID/uid_map or gid_map: `inside` .. `inside + count - 1` are `outside` .. on the host. */
export interface IdRange {
  readonly inside: number;
  readonly outside: number;
  readonly count: number;
}

/** Parses a uid_map/gid_map text; lines that are not three numbers are left out. */
export function parseIdMap(text: string): IdRange[] {
  const out: IdRange[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length === 3 && f.every((n) => Number.isInteger(n) && n >= 0)) out.push({ inside: f[0]!, outside: f[1]!, count: f[2]! });
  }
  return out;
}

/**
 * Which user namespace a process runs in, by its uid map:
 * - `initial`: the host's own (the one line `0 0 4294967295`); uid 0 there is real root;
 * - `subuid`: a namespace that maps more than one id (0 -> the caller, 1..65536 -> a range of
 *   /etc/subuid): a complete fake root, except that device nodes cannot be made;
 * - `single-id`: a namespace that maps one id only (0 -> the caller): chown to any other id fails.
 */
export type NamespaceMapping = 'initial' | 'subuid' | 'single-id';

/** The mapping a parsed uid map describes (parseIdMap). */
export function idMapMapping(map: readonly IdRange[]): NamespaceMapping {
  if (map.length === 1 && map[0]!.inside === 0 && map[0]!.outside === 0 && map[0]!.count === 4294967295) return 'initial';
  return map.reduce((sum, r) => sum + r.count, 0) > 1 ? 'subuid' : 'single-id';
}

let own: NamespaceMapping | undefined;

/**
 * This process's mapping, read from /proc/self/uid_map once (a process does not change its user
 * namespace); `initial` when it cannot be read (a kernel without user namespaces).
 */
export function ownNamespaceMapping(): NamespaceMapping {
  if (own !== undefined) return own;
  let text: string;
  try {
    text = readFileSync('/proc/self/uid_map', 'utf8');
  } catch {
    return (own = 'initial');
  }
  return (own = idMapMapping(parseIdMap(text)));
}

/**
 * True when this process runs in a user namespace other than the initial one (a build without
 * root, src/runtime/user-namespace.ts): its uid map is not the one identity line over every id.
 */
export function inChildUserNamespace(): boolean {
  return ownNamespaceMapping() !== 'initial';
}

/**
 * Where overlayfs keeps its marks (opaque folders, redirects): `trusted.overlay.` as root on the
 * host, `user.overlay.` in a user namespace, where the starter mounts with `userxattr` (only the
 * initial namespace's root may write trusted.* attributes).
 */
export function overlayXattrPrefix(): 'trusted.overlay.' | 'user.overlay.' {
  return inChildUserNamespace() ? 'user.overlay.' : 'trusted.overlay.';
}

/** An xattr overlayfs reads as its own, under either prefix: never taken from a layer or copied up. */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/** True in a user namespace that maps one id only (single-id mode: 0 → the caller). */
export function singleIdNamespace(): boolean {
  return ownNamespaceMapping() === 'single-id';
}

/** The marker the build namespace's process gets (src/runtime/user-namespace.ts): `MODE:UID:GID` of the caller outside. */
export const USERNS_ENV = 'ORCHESTRATOR_USERNS';

/** The caller's uid as the host knows it: the marker's inside the build namespace, else this process's. */
export function hostUid(env: NodeJS.ProcessEnv): number {
  const m = /^(?:subuid|single-id):(\d+):(\d+)$/.exec(env[USERNS_ENV] ?? '');
  if (m && inChildUserNamespace()) return Number(m[1]);
  return process.getuid?.() ?? 0;
}
