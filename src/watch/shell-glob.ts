import { isAbsolute, join, relative, sep } from 'node:path';

import { isGlob } from '../core/is-glob.js';

export { isGlob };

export interface ShellGlob {
  /** The folder above the first segment with a wildcard (absolute): what to watch. */
  readonly folder: string;
  /** Whether `path` (absolute) is matched by the pattern, or lies in a folder it matches. */
  readonly matches: (path: string) => boolean;
}

/** One path segment's wildcard (`*`, `?`, `[a-z]`, `[!x]`) as a regular expression. */
function segmentRegExp(segment: string): string {
  let out = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close === -1) {
        out += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, close);
      if (body.startsWith('!') || body.startsWith('^')) body = `^${body.slice(1)}`;
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else if (c === '\\' && i + 1 < segment.length) {
      out += segment[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return out;
}

/**
 * A shell pattern (`data/*.txt`, `conf/[ab]?.yaml`) relative to `baseDir`, as the build expands
 * `%files` sources and declared inputs. Watching it means watching its fixed folder part and
 * keeping the changes whose path, or a folder above it, the pattern matches (`cp -r` copies a
 * matched folder whole). Hidden files are matched like the others: a few more wake-ups, never a
 * missed one (the fingerprints decide what is stale).
 */
export function shellGlob(baseDir: string, pattern: string): ShellGlob {
  const abs = isAbsolute(pattern) ? pattern : join(baseDir, pattern);
  const segments = abs.split('/');
  const first = segments.findIndex((s) => isGlob(s));
  const fixed = segments.slice(0, first === -1 ? segments.length : first);
  const folder = fixed.join('/') || '/';
  const rest = first === -1 ? [] : segments.slice(first).filter((s) => s !== '' && s !== '.');
  const re = new RegExp(`^${rest.map(segmentRegExp).join('/')}$`);
  return {
    folder,
    matches: (path: string) => {
      const rel = relative(folder, path);
      if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return false;
      const parts = rel.split(sep);
      // The path itself, or a folder above it the pattern matched.
      return parts.length >= rest.length && re.test(parts.slice(0, rest.length).join('/'));
    },
  };
}
