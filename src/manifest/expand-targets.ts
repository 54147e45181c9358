import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { error, type Diagnostic, type RelatedInformation, type SourceLocation } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { findCycles } from '../core/find-cycles.js';
import { nameTable } from '../core/name-table.js';
import { ManifestSource, type Origin, type TargetOrigins } from './manifest-source.js';
import { NAME_PATTERN } from './parse-source-ref.js';
import type { TargetOrigin } from './project.js';
import type { PathSegment } from './yaml-source.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const scalarText = (v: unknown): string | undefined =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;

/** Keys that belong to the target or template that writes them: never inherited, never in the expanded target. */
const OWN_KEYS: ReadonlySet<string> = new Set(['inherits', 'matrix', 'name', 'args_file']);
/** A matrix's keys that are not axes. */
const MATRIX_LISTS: ReadonlySet<string> = new Set(['include', 'exclude']);
/** `{{ NAME }}` in a matrix target's strings. */
const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

export interface ExpandTargetsOptions {
  /** The manifest as written, with `--set` locations (no expansion yet). */
  readonly source: ManifestSource;
  /** The data after applyVariables. */
  readonly data: unknown;
  /** The manifest's folder: `args_file` is relative to it. */
  readonly dir: string;
  /** The variables and `--set` keys each target or template used (applyVariables). */
  readonly envUse: ReadonlyMap<string, readonly string[]>;
  readonly setUse: ReadonlyMap<string, readonly string[]>;
}

export interface ExpandedTargets {
  /** The manifest with every target concrete: no templates, inherits, matrix or args_file. */
  readonly data: Obj;
  /** The text seen through the expansion: locations of expanded targets' fields. */
  readonly source: ManifestSource;
  /** What made each expanded target, by name (only targets that are not plain). */
  readonly origins: ReadonlyMap<string, TargetOrigin>;
  /** Absolute paths of the args files read. */
  readonly argsFiles: readonly string[];
  readonly diagnostics: readonly Diagnostic[];
}

/** A target or template with its parents' keys merged in: the fields and where each came from. */
interface Resolved {
  readonly fields: Obj;
  readonly origins: Map<string, Origin>;
  /** The parents, nearest first, each once. */
  readonly chain: string[];
  readonly argsFiles: string[];
  readonly env: string[];
  readonly set: string[];
}

type Kind = 'targets' | 'templates';

/** One value of a matrix combination and where it is written. */
interface Cell {
  readonly value: string;
  readonly origin: readonly PathSegment[];
}

interface Context {
  readonly source: ManifestSource;
  readonly dir: string;
  readonly targets: Obj;
  readonly templates: Obj;
  readonly options: ExpandTargetsOptions;
  readonly diagnostics: Diagnostic[];
  readonly resolved: Map<string, Resolved>;
  readonly inCycle: ReadonlySet<string>;
  readonly argsFiles: Set<string>;
}

const kindOf = (ctx: Context, name: string): Kind | undefined =>
  Object.hasOwn(ctx.targets, name) ? 'targets' : Object.hasOwn(ctx.templates, name) ? 'templates' : undefined;

/**
 * `templates`, `inherits`, `args_file` and `matrix` (docs/ARCHITECTURE.md, Manifest and recipes),
 * before the target graph is built: each target takes its parents' keys (in the order listed, a
 * later parent over an earlier one, its own keys over all), `args` merge name by name and `inputs`
 * are joined parents first; a matrix target becomes one target per combination, its values added
 * as args and put into `{{ NAME }}` of its strings. The source it returns maps every expanded
 * field back to the text that wrote it, so the checks that follow point there.
 */
// Long on purpose: one pass over the targets in file order that keeps the expanded names, their
// origins, the groups of matrix targets and the name collisions in step.
export function expandTargets(options: ExpandTargetsOptions): ExpandedTargets {
  const { source } = options;
  const data: Obj = isObj(options.data) ? options.data : {};
  const targets: Obj = isObj(data['targets']) ? data['targets'] : {};
  const templates: Obj = isObj(data['templates']) ? data['templates'] : {};
  const diagnostics: Diagnostic[] = [];
  const targetNames = (source.keysAt(['targets']) ?? []).filter((n) => Object.hasOwn(targets, n));
  const templateNames = (source.keysAt(['templates']) ?? []).filter((n) => Object.hasOwn(templates, n));

  checkTemplates(source, templates, templateNames, targets, diagnostics);
  const ctx: Context = { source, dir: options.dir, targets, templates, options, diagnostics, resolved: new Map(), inCycle: new Set(), argsFiles: new Set() };
  const inCycle = checkInherits(ctx, [...targetNames, ...templateNames.filter((n) => !Object.hasOwn(targets, n))]);
  const full: Context = { ...ctx, inCycle };

  const outTargets = nameTable<unknown>();
  const order: string[] = [];
  const targetOrigins = new Map<string, TargetOrigins>();
  const origins = new Map<string, TargetOrigin>();
  const madeGroups = new Map<string, readonly PathSegment[]>();
  const groupsOut: Obj = isObj(data['groups']) ? { ...data['groups'] } : {};
  const groupOrder = (source.keysAt(['groups']) ?? []).filter((n) => Object.hasOwn(groupsOut, n));
  /** Where each name was made, for collisions. */
  const made = new Map<string, { location: SourceLocation; what: string }>();
  const claim = (name: string, location: SourceLocation, what: string): boolean => {
    const prev = made.get(name);
    if (prev === undefined) {
      made.set(name, { location, what });
      return true;
    }
    diagnostics.push(
      error('manifest-duplicate-target', `target name '${name}' is made twice: by ${prev.what} and by ${what}`, {
        location,
        hint: "give each variant its own name: use every matrix key in 'name', or rename a target",
        related: [{ message: `'${name}' is made here by ${prev.what}`, location: prev.location }],
      }),
    );
    return false;
  };
  // Plain targets first: a variant that takes a written target's name is the one reported.
  for (const name of targetNames) if (!isObj(targets[name]) || !('matrix' in targets[name])) made.set(name, { location: source.entryLocation(['targets', name]), what: `target '${name}'` });

  for (const name of targetNames) {
    const t = targets[name];
    if (!isObj(t)) {
      outTargets[name] = t;
      order.push(name);
      continue;
    }
    const r = resolveEntity(full, 'targets', name);
    if (t['name'] !== undefined && t['matrix'] === undefined) {
      diagnostics.push(
        error('manifest-invalid-value', `'name' of target '${name}' applies only with a 'matrix'`, {
          location: source.entryLocation(['targets', name, 'name']),
          hint: "remove 'name', or add a 'matrix' whose values it uses",
        }),
      );
    }
    if (!isObj(t['matrix'])) {
      outTargets[name] = r.fields;
      order.push(name);
      targetOrigins.set(name, { base: ['targets', name], fields: r.origins });
      const origin = originOf(name, r, undefined);
      if (origin !== undefined) origins.set(name, origin);
      continue;
    }
    const variants: string[] = [];
    for (const combo of combinations(full, name, t['matrix'])) {
      const values = Object.fromEntries([...combo].map(([k, c]) => [k, c.value]));
      const vname = variantName(full, name, t, combo);
      if (vname === undefined) continue;
      const what = `target '${name}' with ${[...combo].map(([k, c]) => `${k}=${c.value}`).join(', ')}`;
      const nameLoc = t['name'] !== undefined ? source.valueLocation(['targets', name, 'name']) : source.entryLocation(['targets', name]);
      if (!claim(vname, nameLoc, what)) continue;
      const { fields, fieldOrigins } = variantFields(r, combo);
      outTargets[vname] = fields;
      order.push(vname);
      variants.push(vname);
      targetOrigins.set(vname, { base: ['targets', name], fields: fieldOrigins });
      origins.set(vname, originOf(name, r, values)!);
    }
    if (!Object.hasOwn(groupsOut, name) && !made.has(name) && variants.length > 0) {
      groupsOut[name] = variants;
      groupOrder.push(name);
      madeGroups.set(name, ['targets', name]);
    }
  }

  const expanded: Obj = { ...data, targets: outTargets, groups: groupsOut };
  delete expanded['templates'];
  if (!isObj(data['groups']) && madeGroups.size === 0) delete expanded['groups'];
  return {
    data: expanded,
    source: new ManifestSource(source.yaml, source.overrides, targetOrigins, madeGroups, new Map([['targets', order], ['groups', groupOrder]])),
    origins,
    argsFiles: [...ctx.argsFiles],
    diagnostics,
  };
}

/** Templates: names apart from the targets', and no `matrix` or `name` (they belong to targets). */
function checkTemplates(source: ManifestSource, templates: Obj, templateNames: readonly string[], targets: Obj, diagnostics: Diagnostic[]): void {
  for (const name of templateNames) {
    if (!Object.hasOwn(targets, name)) continue;
    diagnostics.push(
      error('manifest-name-conflict', `template '${name}' has the name of a target`, {
        location: source.entryLocation(['templates', name]),
        hint: "targets and templates share one namespace for 'inherits'; rename the template",
        related: [{ message: `target '${name}' is declared here`, location: source.entryLocation(['targets', name]) }],
      }),
    );
  }
  for (const name of templateNames) {
    const t = templates[name];
    for (const key of ['matrix', 'name']) {
      if (!isObj(t) || t[key] === undefined) continue;
      diagnostics.push(
        error('manifest-invalid-value', `'${key}' applies only to targets, not to template '${name}'`, {
          location: source.entryLocation(['templates', name, key]),
          hint: `move '${key}' to the targets that inherit '${name}'`,
        }),
      );
    }
  }
}

/** What a target is made of besides its own keys; undefined for a plain target. */
function originOf(base: string, r: Resolved, matrix: Record<string, string> | undefined): TargetOrigin | undefined {
  if (matrix === undefined && r.chain.length === 0 && r.argsFiles.length === 0 && r.env.length === 0 && r.set.length === 0) return undefined;
  return {
    base,
    ...(matrix !== undefined ? { matrix } : {}),
    ...(r.chain.length > 0 ? { inherits: r.chain } : {}),
    ...(r.argsFiles.length > 0 ? { argsFiles: r.argsFiles } : {}),
    ...(r.env.length > 0 ? { env: r.env } : {}),
    ...(r.set.length > 0 ? { set: r.set } : {}),
  };
}

/** Unknown parents and cycles of `inherits`, each reported once; returns the names on a cycle. */
function checkInherits(ctx: Context, names: readonly string[]): Set<string> {
  const { source } = ctx;
  const parents = new Map<string, Array<{ name: string; location: SourceLocation }>>();
  for (const name of names) {
    const kind = kindOf(ctx, name)!;
    const e = (kind === 'targets' ? ctx.targets : ctx.templates)[name];
    const list = isObj(e) && Array.isArray(e['inherits']) ? (e['inherits'] as unknown[]) : [];
    const edges: Array<{ name: string; location: SourceLocation }> = [];
    list.forEach((p, i) => {
      if (typeof p !== 'string') return;
      const location = source.valueLocation([kind, name, 'inherits', i]);
      if (kindOf(ctx, p) === undefined) {
        ctx.diagnostics.push(
          error('manifest-unknown-parent', `unknown template or target '${p}' in 'inherits' of ${kind === 'targets' ? 'target' : 'template'} '${name}'`, {
            location,
            hint: didYouMeanHint(p, names) ?? "'inherits' names templates (under 'templates:') or targets of this manifest",
          }),
        );
        return;
      }
      edges.push({ name: p, location });
    });
    parents.set(name, edges);
  }
  const inCycle = new Set<string>();
  for (const cycle of findCycles(names, (n) => (parents.get(n) ?? []).map((p) => p.name))) {
    for (const n of cycle) inCycle.add(n);
    const related: RelatedInformation[] = cycle.map((n, i) => {
      const next = cycle[(i + 1) % cycle.length]!;
      return { message: `'${n}' inherits '${next}'`, location: parents.get(n)!.find((p) => p.name === next)!.location };
    });
    const first = cycle[0]!;
    ctx.diagnostics.push(
      error('manifest-cycle', `inherits cycle: ${[...cycle, first].join(' → ')}`, {
        location: source.entryLocation([kindOf(ctx, first)!, first]),
        hint: "a target or template cannot inherit from itself; remove one of these 'inherits' entries",
        related,
      }),
    );
  }
  return inCycle;
}

/** A target's or template's keys with its parents' merged in (memoized; a cycle's members get only their own). */
function resolveEntity(ctx: Context, kind: Kind, name: string): Resolved {
  const key = `${kind}/${name}`;
  const known = ctx.resolved.get(key);
  if (known) return known;
  const e = (kind === 'targets' ? ctx.targets : ctx.templates)[name];
  const own = ownLayer(ctx, kind, name, isObj(e) ? e : {});
  const out: Resolved = { fields: nameTable(), origins: new Map(), chain: [], argsFiles: [], env: [], set: [] };
  const parents = isObj(e) && Array.isArray(e['inherits']) && !ctx.inCycle.has(name) ? (e['inherits'] as unknown[]) : [];
  for (const p of parents) {
    if (typeof p !== 'string') continue;
    const pk = kindOf(ctx, p);
    if (pk === undefined) continue;
    const r = resolveEntity(ctx, pk, p);
    merge(out, r);
    for (const c of [p, ...r.chain]) if (!out.chain.includes(c)) out.chain.push(c);
    for (const f of r.argsFiles) if (!out.argsFiles.includes(f)) out.argsFiles.push(f);
    for (const v of r.env) if (!out.env.includes(v)) out.env.push(v);
    for (const s of r.set) if (!out.set.includes(s)) out.set.push(s);
  }
  merge(out, own);
  for (const f of own.argsFiles) if (!out.argsFiles.includes(f)) out.argsFiles.push(f);
  for (const v of ctx.options.envUse.get(key) ?? []) if (!out.env.includes(v)) out.env.push(v);
  for (const s of ctx.options.setUse.get(key) ?? []) if (!out.set.includes(s)) out.set.push(s);
  ctx.resolved.set(key, out);
  return out;
}

/** `layer` over `into`: args name by name, inputs appended (each once), other keys replaced. */
function merge(into: Resolved, layer: { fields: Obj; origins: ReadonlyMap<string, Origin> }): void {
  for (const [k, v] of Object.entries(layer.fields)) {
    if (k === 'args' && isObj(v)) {
      const args = isObj(into.fields['args']) ? into.fields['args'] : (into.fields['args'] = nameTable<unknown>());
      for (const [a, av] of Object.entries(v)) {
        (args as Obj)[a] = av;
        const o = layer.origins.get(`args/${a}`);
        if (o !== undefined) into.origins.set(`args/${a}`, o);
      }
    } else if (k === 'inputs' && Array.isArray(v)) {
      const inputs = Array.isArray(into.fields['inputs']) ? (into.fields['inputs'] as unknown[]) : (into.fields['inputs'] = []);
      v.forEach((item: unknown, i) => {
        if (typeof item === 'string' && inputs.includes(item)) return;
        const o = layer.origins.get(`inputs/${i}`);
        if (o !== undefined) into.origins.set(`inputs/${inputs.length}`, o);
        inputs.push(item);
      });
    } else {
      into.fields[k] = v;
      const o = layer.origins.get(k);
      if (o !== undefined) into.origins.set(k, o);
    }
  }
}

/** What a target or template writes itself: its keys (args from its args_file under its own args). */
function ownLayer(ctx: Context, kind: Kind, name: string, e: Obj): { fields: Obj; origins: Map<string, Origin>; argsFiles: string[] } {
  const fields = nameTable<unknown>();
  const origins = new Map<string, Origin>();
  const argsFiles: string[] = [];
  const at = (...rest: PathSegment[]): PathSegment[] => [kind, name, ...rest];
  if (typeof e['args_file'] === 'string' && e['args_file'] !== '') {
    const file = readArgsFile(ctx, e['args_file'], ctx.source.valueLocation(at('args_file')));
    if (file !== undefined) {
      argsFiles.push(e['args_file']);
      ctx.argsFiles.add(resolve(ctx.dir, e['args_file']));
      fields['args'] = file.args;
      for (const [a, loc] of Object.entries(file.locations)) origins.set(`args/${a}`, loc);
    }
  }
  for (const k of Object.keys(e)) {
    if (OWN_KEYS.has(k)) continue;
    const v = e[k];
    if (k === 'args' && isObj(v)) {
      const args = isObj(fields['args']) ? fields['args'] : (fields['args'] = nameTable<unknown>());
      for (const a of new Set([...(ctx.source.keysAt(at('args')) ?? []), ...Object.keys(v)])) {
        if (!Object.hasOwn(v, a)) continue;
        (args as Obj)[a] = v[a];
        origins.set(`args/${a}`, at('args', a));
      }
    } else if (k === 'inputs' && Array.isArray(v)) {
      fields['inputs'] = [...(v as unknown[])];
      v.forEach((_: unknown, i) => origins.set(`inputs/${i}`, at('inputs', i)));
    } else {
      fields[k] = v;
      origins.set(k, at(k));
    }
  }
  return { fields, origins, argsFiles };
}

/**
 * An args file: `NAME=VALUE` lines (`export ` allowed before, a value in single or double quotes
 * taken as it is inside them), blank lines and `#` comments. Each value's location is its line.
 */
function readArgsFile(ctx: Context, written: string, at: SourceLocation): { args: Obj; locations: Record<string, SourceLocation> } | undefined {
  const abs = resolve(ctx.dir, written);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    ctx.diagnostics.push(
      error('manifest-args-file-not-found', code === 'EISDIR' ? `args file '${written}' is a folder` : `args file '${written}' not found`, {
        location: at,
        hint: 'args_file paths are relative to the folder of orchestrator.yaml',
      }),
    );
    return undefined;
  }
  const shown = join(dirname(ctx.source.displayName), relative(ctx.dir, abs));
  const args = nameTable<unknown>();
  const locations = nameTable<SourceLocation>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (/^\s*(#|$)/.test(line)) return;
    const m = /^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) {
      const start = line.length - line.trimStart().length;
      ctx.diagnostics.push(
        error('manifest-args-file-syntax', `line ${i + 1} of args file '${written}' is not NAME=VALUE`, {
          location: { file: shown, line: i + 1, column: start + 1, endColumn: Math.max(start + 2, line.trimEnd().length + 1), sourceLine: line },
          hint: "write one 'NAME=VALUE' per line (NAME: letters, digits and '_'); '#' starts a comment",
        }),
      );
      return;
    }
    const [, lead = '', name = '', rest = ''] = m;
    const q = /^(["'])(.*)\1\s*$/.exec(rest);
    args[name] = q ? q[2] : rest.trim();
    const column = lead.length + name.length + 2;
    locations[name] = { file: shown, line: i + 1, column, endColumn: Math.max(column + 1, line.length + 1), sourceLine: line };
  });
  return { args, locations };
}

/**
 * A matrix's combinations as GitHub Actions makes them: the product of the axes in the order
 * written (the first axis varies slowest), less those matching an `exclude` entry, then each
 * `include` entry added to every combination whose original values it does not change, or made a
 * combination of its own when it fits none.
 */
function combinations(ctx: Context, name: string, matrix: Obj): Array<Map<string, Cell>> {
  const at = (...rest: PathSegment[]): PathSegment[] => ['targets', name, 'matrix', ...rest];
  const axes = (ctx.source.keysAt(at()) ?? Object.keys(matrix)).filter((k) => !MATRIX_LISTS.has(k) && Array.isArray(matrix[k]));
  let combos: Array<Map<string, Cell>> = axes.length > 0 ? [new Map()] : [];
  for (const axis of axes) {
    const values = (matrix[axis] as unknown[]).flatMap((v, i) => {
      const text = scalarText(v);
      return text === undefined ? [] : [{ value: text, origin: at(axis, i) }];
    });
    combos = combos.flatMap((c) => values.map((cell) => new Map([...c, [axis, cell]])));
  }
  const entries = (key: string): Array<{ index: number; cells: Map<string, Cell> }> =>
    (Array.isArray(matrix[key]) ? (matrix[key] as unknown[]) : []).flatMap((e, index) => {
      if (!isObj(e)) return [];
      const cells = new Map<string, Cell>();
      for (const k of ctx.source.keysAt(at(key, index)) ?? Object.keys(e)) {
        const text = scalarText(e[k]);
        if (text !== undefined) cells.set(k, { value: text, origin: at(key, index, k) });
      }
      return [{ index, cells }];
    });
  const matches = (combo: Map<string, Cell>, cells: Map<string, Cell>): boolean => [...cells].every(([k, c]) => combo.get(k)?.value === c.value);
  for (const { cells } of entries('exclude')) combos = combos.filter((c) => !matches(c, cells));
  const original = combos.map((c) => new Set(c.keys()));
  for (const { cells } of entries('include')) {
    let fitted = false;
    combos.forEach((combo, i) => {
      const keep = original[i]!;
      if ([...cells].some(([k, c]) => keep.has(k) && combo.get(k)!.value !== c.value)) return;
      for (const [k, c] of cells) combo.set(k, c);
      fitted = true;
    });
    if (!fitted) {
      combos.push(new Map(cells));
      original.push(new Set());
    }
  }
  // An axis without values is the schema's error already.
  if (combos.length === 0 && !axes.some((a) => (matrix[a] as unknown[]).length === 0)) {
    ctx.diagnostics.push(
      error('manifest-matrix-empty', `the matrix of target '${name}' makes no targets`, {
        location: ctx.source.entryLocation(['targets', name, 'matrix']),
        hint: "give each axis at least one value, or exclude fewer combinations; 'include' entries add combinations",
      }),
    );
  }
  return combos;
}

/** A variant's name: `name:` with its `{{ KEY }}` filled in, else BASE-VALUE-VALUE...; undefined after an error. */
function variantName(ctx: Context, base: string, t: Obj, combo: Map<string, Cell>): string | undefined {
  const template = typeof t['name'] === 'string' ? t['name'] : undefined;
  const location = template !== undefined ? ctx.source.valueLocation(['targets', base, 'name']) : ctx.source.entryLocation(['targets', base]);
  const values = [...combo].map(([k, c]) => `${k}=${c.value}`).join(', ');
  let unknown: string | undefined;
  const name =
    template === undefined
      ? [base, ...[...combo.values()].map((c) => c.value)].join('-')
      : template.replace(PLACEHOLDER, (all, key: string) => {
          const cell = combo.get(key);
          if (cell === undefined) unknown ??= key;
          return cell?.value ?? all;
        });
  if (unknown !== undefined) {
    const report = `${base}\0${unknown}`;
    if (!reportedUnknown.has(ctx.diagnostics) || !reportedUnknown.get(ctx.diagnostics)!.has(report)) {
      if (!reportedUnknown.has(ctx.diagnostics)) reportedUnknown.set(ctx.diagnostics, new Set());
      reportedUnknown.get(ctx.diagnostics)!.add(report);
      ctx.diagnostics.push(
        error('manifest-invalid-name', `'{{ ${unknown} }}' in the name of target '${base}' is not a key of its matrix (variant ${values})`, {
          location,
          hint: didYouMeanHint(unknown, [...combo.keys()]) ?? `matrix keys: ${[...combo.keys()].join(', ')}`,
        }),
      );
    }
    return undefined;
  }
  if (!NAME_PATTERN.test(name)) {
    ctx.diagnostics.push(
      error('manifest-invalid-name', `invalid target name '${name}' made by target '${base}' with ${values}`, {
        location,
        hint: "names use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit; write a 'name:' that makes such names",
      }),
    );
    return undefined;
  }
  return name;
}
const reportedUnknown = new WeakMap<Diagnostic[], Set<string>>();

/** A variant's fields: the matrix values as args, and put into `{{ KEY }}` of its strings. */
function variantFields(r: Resolved, combo: Map<string, Cell>): { fields: Obj; fieldOrigins: Map<string, Origin> } {
  const fill = (s: string): string => s.replace(PLACEHOLDER, (all, key: string) => combo.get(key)?.value ?? all);
  const fields = nameTable<unknown>();
  for (const [k, v] of Object.entries(r.fields)) {
    if (typeof v === 'string') fields[k] = fill(v);
    else if ((k === 'inputs' || k === 'push') && Array.isArray(v)) fields[k] = v.map((i: unknown) => (typeof i === 'string' ? fill(i) : i));
    else if (k === 'args' && isObj(v)) fields[k] = nameTable(Object.entries(v).map(([a, av]) => [a, typeof av === 'string' ? fill(av) : av]));
    else fields[k] = v;
  }
  const fieldOrigins = new Map(r.origins);
  const args = isObj(fields['args']) ? fields['args'] : (fields['args'] = nameTable<unknown>());
  for (const [k, c] of combo) {
    (args as Obj)[k] = c.value;
    fieldOrigins.set(`args/${k}`, c.origin);
  }
  return { fields, fieldOrigins };
}
