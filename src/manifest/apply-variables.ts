import { error, type Diagnostic, type SourceLocation } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { describePath } from './schema-check.js';
import type { PathSegment, YamlSource } from './yaml-source.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The keys `--set TARGET.KEY=VALUE` may set (`args.NAME` besides). */
export const SET_KEYS: readonly string[] = ['from', 'recipe', 'format', 'output', 'size', 'test', 'inputs', 'args_file'];

/** `${NAME}`, `${NAME:-default}`, and `$${` for a literal `${`. */
const VARIABLE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export interface ApplyVariablesOptions {
  readonly yaml: YamlSource;
  /** The manifest's data (YAML → JS), as written. */
  readonly data: unknown;
  /** The environment `${NAME}` reads. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** `--set TARGET.KEY=VALUE`, in command-line order (a later one wins). */
  readonly set: readonly string[];
}

export interface AppliedVariables {
  /** A copy of the data with the `--set` values in place and every `${NAME}` replaced. */
  readonly data: unknown;
  /** Where each `--set` value was given, by the path it set joined with '/'. */
  readonly overrides: ReadonlyMap<string, SourceLocation>;
  /** Every variable read, with its value (null: unset, its default used). */
  readonly env: Readonly<Record<string, string | null>>;
  /** The variables each target or template (`targets/NAME`, `templates/NAME`) read. */
  readonly envUse: ReadonlyMap<string, readonly string[]>;
  /** The keys `--set` gave each target or template (`targets/NAME` → `format`, `args.PY`). */
  readonly setUse: ReadonlyMap<string, readonly string[]>;
  readonly diagnostics: readonly Diagnostic[];
}

/** The `--set` entry as a location of its own: the "line" is the option as it was typed. */
function setLocation(entry: string, column: number, length: number): SourceLocation {
  const line = `--set ${entry}`;
  return { file: 'command line', line: 1, column: column + 7, endColumn: column + 7 + Math.max(1, length), sourceLine: line };
}

const entityOf = (path: readonly PathSegment[]): string | undefined =>
  (path[0] === 'targets' || path[0] === 'templates') && path[1] !== undefined ? `${path[0]}/${String(path[1])}` : undefined;

function add(map: Map<string, string[]>, key: string | undefined, value: string): void {
  if (key === undefined) return;
  const list = map.get(key) ?? [];
  if (!list.includes(value)) list.push(value);
  map.set(key, list);
}

/**
 * The manifest's variables (docs/ARCHITECTURE.md, Manifest and recipes): first `--set` values
 * replace or add target keys, then `${NAME}` and `${NAME:-default}` in every string value are
 * replaced from the environment. An unset variable without a default is an error at the text that
 * names it. Runs before the schema check, which then sees the values as they will be used.
 */
export function applyVariables(options: ApplyVariablesOptions): AppliedVariables {
  // Nothing to do (most manifests): no copy and no walk of a manifest of many thousand targets.
  if (options.set.length === 0 && !options.yaml.text.includes('${')) {
    return { data: options.data, overrides: new Map(), env: {}, envUse: new Map(), setUse: new Map(), diagnostics: [] };
  }
  const diagnostics: Diagnostic[] = [];
  const data = structuredClone(options.data);
  const overrides = new Map<string, SourceLocation>();
  const setUse = new Map<string, string[]>();
  for (const entry of options.set) applySet(entry, data, overrides, setUse, diagnostics);

  const env: Record<string, string | null> = Object.create(null) as Record<string, string | null>;
  const envUse = new Map<string, string[]>();
  const visit = (value: unknown, path: PathSegment[]): unknown => {
    if (typeof value === 'string') {
      if (!value.includes('${') || overrides.has(path.join('/'))) return value;
      return value.replace(VARIABLE, (match, name: string | undefined, fallback: string | undefined) => {
        if (name === undefined) return '${';
        const now = options.env[name];
        env[name] = now ?? null;
        add(envUse, entityOf(path), name);
        if (now !== undefined && (now !== '' || fallback === undefined)) return now;
        if (fallback !== undefined) return fallback;
        diagnostics.push(
          error('manifest-unset-variable', `environment variable '${name}' is not set (${describePath(path)})`, {
            location: variableLocation(options.yaml, path, match),
            hint: `set it ('export ${name}=...'), or give a default: \${${name}:-VALUE}`,
          }),
        );
        return match;
      });
    }
    if (Array.isArray(value)) return value.map((v: unknown, i) => visit(v, [...path, i]));
    if (isObj(value)) {
      for (const k of Object.keys(value)) value[k] = visit(value[k], [...path, k]);
      return value;
    }
    return value;
  };
  return { data: visit(data, []), overrides, env, envUse, setUse, diagnostics };
}

/** The `${NAME...}` inside the value's text when it can be found there, else the whole value. */
function variableLocation(yaml: YamlSource, path: readonly PathSegment[], match: string): SourceLocation {
  const range = yaml.node(path)?.range;
  if (range) {
    const at = yaml.text.slice(range[0], range[1]).indexOf(match);
    if (at >= 0) return yaml.span(range[0] + at, range[0] + at + match.length);
  }
  return yaml.valueLocation(path);
}

/** One `--set TARGET.KEY=VALUE` (TARGET may be a template or `*`, every target). */
function applySet(entry: string, data: unknown, overrides: Map<string, SourceLocation>, setUse: Map<string, string[]>, diagnostics: Diagnostic[]): void {
  const m = /^([^.=]+)\.([A-Za-z_]+)(?:\.([^=]*))?=(.*)$/s.exec(entry);
  if (!m) {
    diagnostics.push(
      error('manifest-invalid-set', `invalid --set '${entry}'`, {
        location: setLocation(entry, 0, entry.length),
        hint: "write --set TARGET.KEY=VALUE (KEY: from, recipe, format, output, size, test, inputs, args_file, args.NAME); TARGET '*' sets every target",
      }),
    );
    return;
  }
  const [, target = '', key = '', sub, value = ''] = m;
  const valueColumn = entry.length - value.length;
  const root = isObj(data) ? data : {};
  const targets = isObj(root['targets']) ? root['targets'] : {};
  const templates = isObj(root['templates']) ? root['templates'] : {};
  const names: Array<['targets' | 'templates', string]> =
    target === '*' ? Object.keys(targets).map((n) => ['targets', n]) : Object.hasOwn(targets, target) ? [['targets', target]] : Object.hasOwn(templates, target) ? [['templates', target]] : [];
  if (names.length === 0 && target !== '*') {
    diagnostics.push(
      error('manifest-unknown-target', `unknown target '${target}' in --set '${entry}'`, {
        location: setLocation(entry, 0, target.length),
        hint: didYouMeanHint(target, [...Object.keys(targets), ...Object.keys(templates)]) ?? "name a target or template of the manifest, or '*' for every target",
      }),
    );
    return;
  }
  const isArgs = key === 'args' && sub !== undefined && /^[A-Za-z_][A-Za-z0-9_]*$/.test(sub);
  if (!isArgs && (!SET_KEYS.includes(key) || sub !== undefined)) {
    const written = sub !== undefined ? `${key}.${sub}` : key;
    diagnostics.push(
      error('manifest-invalid-set', `--set cannot set '${written}' of a target`, {
        location: setLocation(entry, target.length + 1, written.length),
        hint: didYouMeanHint(key, [...SET_KEYS, 'args']) ?? `keys: ${SET_KEYS.join(', ')}, args.NAME`,
      }),
    );
    return;
  }
  const loc = setLocation(entry, valueColumn, value.length);
  for (const [kind, name] of names) {
    const container = kind === 'targets' ? targets : templates;
    const shared = container[name];
    if (!isObj(shared)) continue;
    // A copy: a YAML alias may share this mapping with another target.
    const t: Obj = (container[name] = { ...shared });
    const base = `${kind}/${name}`;
    if (isArgs) {
      const args = isObj(t['args']) ? (t['args'] = { ...t['args'] }) : (t['args'] = {});
      (args as Obj)[sub] = value;
      overrides.set(`${base}/args/${sub}`, loc);
      add(setUse, base, `args.${sub}`);
      continue;
    }
    if (key === 'inputs') {
      const list = value === '' ? [] : value.split(',');
      t[key] = list;
      list.forEach((_, i) => overrides.set(`${base}/inputs/${i}`, loc));
    } else if (key === 'test') t[key] = value === 'true' ? true : value === 'false' ? false : value;
    else if (key === 'size') t[key] = /^[0-9]+$/.test(value) ? Number(value) : value;
    else t[key] = value;
    overrides.set(`${base}/${key}`, loc);
    add(setUse, base, key);
  }
}
