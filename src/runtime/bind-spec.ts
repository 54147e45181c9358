import { isAbsolute, resolve } from 'node:path';
import { error } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';

/** One user bind: `-B src[:dst[:ro|rw]]`. */
export interface BindSpec {
  /** Host path, absolute. */
  readonly source: string;
  /** Path in the container, absolute. */
  readonly target: string;
  readonly readOnly: boolean;
}

/**
 * Parses bind specs as Singularity/Apptainer take them: each item `src[:dst[:ro|rw]]`, items
 * separated by commas (in `-B a,b`, `SINGULARITY_BINDPATH` and `APPTAINER_BIND`). A relative
 * source is relative to `cwd`; the destination defaults to the source.
 */
export function parseBindSpecs(text: string, options: { cwd: string; origin: string }): Result<BindSpec[]> {
  const specs: BindSpec[] = [];
  if (text.trim() === '') {
    return fail(error('bind-invalid', `${options.origin}: empty bind`, { hint: 'expected SRC[:DST[:ro|rw]]' }));
  }
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const parts = item.split(':');
    if (parts.length > 3 || parts[0] === '') {
      return fail(error('bind-invalid', `${options.origin}: invalid bind '${item}'`, { hint: 'expected SRC[:DST[:ro|rw]]' }));
    }
    const [src, dst, mode] = parts as [string, string | undefined, string | undefined];
    if (mode !== undefined && mode !== 'ro' && mode !== 'rw') {
      return fail(error('bind-invalid', `${options.origin}: invalid bind option '${mode}' in '${item}'`, { hint: "the options are 'ro' and 'rw'" }));
    }
    const target = dst === undefined || dst === '' ? resolve(options.cwd, src) : dst;
    if (!isAbsolute(target)) {
      return fail(error('bind-invalid', `${options.origin}: the destination of bind '${item}' must be an absolute path`));
    }
    if (resolve('/', target) === '/') {
      return fail(
        error('bind-invalid', `${options.origin}: cannot bind onto / in '${item}': the container's root is the image`, {
          hint: `bind to a folder inside the container, e.g. ${src}:/mnt`,
        }),
      );
    }
    specs.push({ source: resolve(options.cwd, src), target: resolve('/', target), readOnly: mode === 'ro' });
  }
  return ok(specs);
}
