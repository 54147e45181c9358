/**
 * Ignore rules as `.dockerignore` writes them (the `.orchestratorignore` of a project): one
 * pattern a line, relative to the project folder; `#` starts a comment line; `!` re-includes what
 * an earlier line excluded; `*` and `?` stay within one path segment, `**` spans any number of
 * segments; a pattern that matches a folder matches everything in it. The last matching line
 * decides.
 */
export interface IgnoreRule {
  readonly pattern: string;
  readonly negate: boolean;
  readonly regex: RegExp;
}

function segmentRegex(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = text.indexOf(']', i + 1);
      if (end < 0) out += '\\[';
      else {
        const body = text.slice(i + 1, end);
        out += `[${body.startsWith('!') || body.startsWith('^') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < text.length) out += `\\${text[++i]!}`;
    else out += /[.+^${}()|\\/]/.test(c) ? `\\${c}` : c;
  }
  return out;
}

/** A pattern (already cleaned: no leading or trailing `/`) as a regular expression over relative paths. */
function patternRegex(pattern: string): RegExp {
  const parts = pattern.split('/');
  let out = '';
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1;
    if (part === '**') out += last ? '.*' : '(?:.*/)?';
    else out += segmentRegex(part) + (last ? '' : '/');
  }
  return new RegExp(`^${out}$`);
}

/** The rules of an ignore file's text, in order; blank lines and comments are left out. */
export function parseIgnoreRules(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    if (negate) line = line.slice(1).trim();
    // As Docker cleans them: no leading `/`, no `./`, no trailing `/`, no doubled `/`.
    const pattern = line
      .split('/')
      .filter((p, i, all) => p !== '' && p !== '.' && !(p === '' && i === all.length - 1))
      .join('/');
    if (pattern === '') continue;
    rules.push({ pattern, negate, regex: patternRegex(pattern) });
  }
  return rules;
}

/**
 * Whether the rules exclude `rel` (relative to the folder the rules are for, `/`-separated): a rule
 * applies when it matches the path or one of the folders above it; the last one that applies wins.
 */
export function isIgnored(rules: readonly IgnoreRule[], rel: string): boolean {
  if (rules.length === 0 || rel === '' || rel === '.') return false;
  const prefixes: string[] = [];
  const parts = rel.split('/');
  for (let i = 1; i <= parts.length; i++) prefixes.push(parts.slice(0, i).join('/'));
  let ignored = false;
  for (const rule of rules) {
    if (rule.negate === !ignored) continue;
    if (prefixes.some((p) => rule.regex.test(p))) ignored = !rule.negate;
  }
  return ignored;
}
