import { readFile } from 'node:fs/promises';

/**
 * Which user namespace this process runs in, as far as a Debian bootstrap cares:
 * - `initial`: the host's own (uid_map `0 0 4294967295`); uid 0 here is real root;
 * - `subuid`: a namespace that maps more than one id (0 -> the caller, 1..65536 -> a range of
 *   /etc/subuid): a complete fake root, except that device nodes cannot be made;
 * - `single-id`: a namespace that maps one id only (0 -> the caller): chown to any other id fails.
 */
export type NamespaceMapping = 'initial' | 'subuid' | 'single-id';

/** The mapping a /proc/PID/uid_map text describes (lines of `inside outside count`). */
export function parseUidMap(text: string): NamespaceMapping {
  const lines = text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every((n) => Number.isInteger(n)));
  if (lines.length === 1 && lines[0]![0] === 0 && lines[0]![1] === 0 && lines[0]![2] === 4294967295) return 'initial';
  const ids = lines.reduce((sum, f) => sum + f[2]!, 0);
  return ids > 1 ? 'subuid' : 'single-id';
}

/** This process's mapping, from /proc/self/uid_map (`initial` when it cannot be read: no user namespaces). */
export async function namespaceMapping(uidMapFile = '/proc/self/uid_map'): Promise<NamespaceMapping> {
  const text = await readFile(uidMapFile, 'utf8').catch(() => undefined);
  return text === undefined ? 'initial' : parseUidMap(text);
}
