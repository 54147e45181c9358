import { isAbsolute, resolve } from 'node:path';
import type { SourceRef } from './project.js';

/** Target names, as the schema allows them. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * Parses a `from:` value (already checked by the schema) into a SourceRef. Relative paths are
 * resolved against `dir`, the manifest's folder. Returns undefined for text the schema refuses.
 */
export function parseSourceRef(text: string, dir: string): SourceRef | undefined {
  if (/\s/.test(text) || text === '') return undefined;
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(dir, p));
  if (text.startsWith('docker://')) {
    const ref = text.slice('docker://'.length);
    return ref === '' ? undefined : { kind: 'docker', text, ref };
  }
  if (text.startsWith('oras://')) {
    const ref = text.slice('oras://'.length);
    return ref === '' ? undefined : { kind: 'oras', text, ref };
  }
  if (text.startsWith('oci-archive:')) {
    const file = text.slice('oci-archive:'.length);
    return file === '' ? undefined : { kind: 'oci-archive', text, file: abs(file) };
  }
  if (text.startsWith('docker-archive:')) {
    const file = text.slice('docker-archive:'.length);
    return file === '' ? undefined : { kind: 'docker-archive', text, file: abs(file) };
  }
  if (text.startsWith('oci:')) {
    const rest = text.slice('oci:'.length);
    if (rest === '') return undefined;
    // oci:DIR[:TAG] — a tag is what follows the last colon, when that holds no slash.
    const colon = rest.lastIndexOf(':');
    if (colon > 0 && !rest.slice(colon + 1).includes('/') && colon < rest.length - 1) {
      return { kind: 'oci', text, dir: abs(rest.slice(0, colon)), tag: rest.slice(colon + 1) };
    }
    return { kind: 'oci', text, dir: abs(rest) };
  }
  if (text.startsWith('target:')) {
    const target = text.slice('target:'.length);
    return NAME_PATTERN.test(target) ? { kind: 'target', text, target } : undefined;
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(text)) return undefined;
  return { kind: 'path', text, path: abs(text) };
}
