import { statSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { error, type Diagnostic, type Reason, type RelatedInformation, type SourceLocation } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { expandHome, userHome } from '../core/expand-home.js';
import { findCycles } from '../core/find-cycles.js';
import { nameTable } from '../core/name-table.js';
import { parseReference } from '../registry/reference.js';
import { checkOutputs, fixedPart, type OutsideFolder, type ProtectedPath } from './check-outputs.js';
import { defaultOutput, outputFor, outputFormat } from './output-format.js';
import { parseSize } from './parse-size.js';
import { DEFAULT_SQUASHFS_OPTIONS, resolveSquashfsOptions, SQUASHFS_COMPRESSIONS, SQUASHFS_WRITERS, type SquashfsOptions } from './squashfs-options.js';
import { fromPatternDiagnostic } from './schema-check.js';
import { NAME_PATTERN, parseSourceRef } from './parse-source-ref.js';
import { FORMATS, type Format, type Group, type Project, type ProjectExpansion, type PushDestination, type SourceRef, type Target, type TargetLocations, type TargetOrigin } from './project.js';
import type { ManifestSource } from './manifest-source.js';
import type { PathSegment } from './yaml-source.js';

export interface BuildProjectOptions {
  /** Absolute path of the manifest. */
  readonly file: string;
  readonly source: ManifestSource;
  /** The manifest's data (YAML → JS); may hold schema errors, which were reported already. */
  readonly data: unknown;
  /** For `~/` in cache.dir and outputs.outside; default the user's home. */
  readonly homedir?: string;
  /** What made each expanded target (expandTargets), attached to it. */
  readonly origins?: ReadonlyMap<string, TargetOrigin>;
  /** What the expansion read besides the text (variables, args files, --set), when anything. */
  readonly expansion?: ProjectExpansion;
}

type Obj = Record<string, unknown>;
const TARGET_KEYS: ReadonlySet<string> = new Set(['from', 'recipe', 'format', 'output', 'size', 'squashfs', 'args', 'inputs', 'test', 'push']);
/** The project's state folder (src/state's STATE_DIR_NAME; the manifest layer is below it). */
const STATE_DIR_NAME = '.orchestrator';
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const argText = (v: unknown): string | undefined =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;

/** A `target:X` reference of a target (in `from` or `inputs`), usable or not, for references and cycles. */
interface TargetRef {
  readonly ref: string;
  readonly location: SourceLocation;
  readonly nameLocation: SourceLocation;
  readonly via: 'from' | 'inputs';
}

/** What the steps of buildProject share: the manifest, what was read so far, and the problems found. */
interface Context {
  readonly source: ManifestSource;
  readonly file: string;
  readonly dir: string;
  readonly home: string;
  readonly data: Obj;
  readonly diagnostics: Diagnostic[];
  readonly targetNames: readonly string[];
  readonly targetSet: ReadonlySet<string>;
  readonly groupNames: readonly string[];
  readonly groupSet: ReadonlySet<string>;
  readonly refs: Map<string, TargetRef[]>;
  /** The manifest, recipes, inputs and local sources: no output may touch them. */
  readonly protectedPaths: ProtectedPath[];
  readonly origins: ReadonlyMap<string, TargetOrigin>;
}

/** Keys of the mapping at `path`, in file order (JS objects put integer-like keys first); an expanded target's, in the data's order. */
function keysInOrder(source: ManifestSource, path: readonly string[], value?: unknown): string[] {
  return source.keysAt(path) ?? (isObj(value) ? Object.keys(value) : []);
}

/**
 * The semantic checks (docs/ARCHITECTURE.md, Manifest and recipes) on a manifest's data, and the typed Project. Fields the
 * schema refused are skipped here (their error is already out), so each problem is reported once;
 * every other problem of the file is reported in the same run. The Project is returned only when
 * this step finds no error (the caller also holds back on schema errors).
 */
export function buildProject(options: BuildProjectOptions): { project: Project; diagnostics: Diagnostic[] } {
  const { source, file } = options;
  const dir = dirname(file);
  const data: Obj = isObj(options.data) ? options.data : {};
  const targetNames = keysInOrder(source, ['targets']);
  const groupNames = keysInOrder(source, ['groups']);
  const ctx: Context = {
    source,
    file,
    dir,
    home: options.homedir ?? userHome(),
    data,
    diagnostics: [],
    targetNames,
    targetSet: new Set(targetNames),
    groupNames,
    groupSet: new Set(groupNames),
    refs: new Map(),
    origins: options.origins ?? new Map(),
    protectedPaths: [
      { path: file, what: `the manifest '${relative(dir, file)}'` },
      { path: join(dir, STATE_DIR_NAME), what: `the project's state folder '${STATE_DIR_NAME}/'` },
    ],
  };

  const top = readArgs(ctx, data['args'], ['args']);
  const cacheDir = readCacheDir(ctx);
  const cacheRemote = readCacheRemote(ctx);
  const outside = readOutsideFolders(ctx);
  const targetsData: Obj = isObj(data['targets']) ? data['targets'] : {};
  const targets = targetNames.flatMap((name) => readTarget(ctx, name, targetsData[name], top.args) ?? []);
  checkReferences(ctx);
  const groups = readGroups(ctx);
  checkTargetCycles(ctx);
  checkGroupCycles(ctx, groups);
  const shown = (t: Target): string => (t.outputGiven ? String((targetsData[t.name] as Obj)['output']) : defaultOutput(t.name, t.format));
  ctx.diagnostics.push(...checkOutputs({ dir, targets, shown, outside, home: ctx.home, protectedPaths: ctx.protectedPaths }));

  const project: Project = {
    file,
    dir,
    version: 1,
    ...(cacheDir !== undefined ? { cacheDir } : {}),
    ...(cacheRemote !== undefined ? { cacheRemote } : {}),
    ...(outside.length > 0 ? { outputsOutside: outside.map((f) => f.path) } : {}),
    args: top.args,
    targets,
    groups,
    locations: {
      file: source.fileLocation(),
      ...(data['version'] !== undefined ? { version: source.valueLocation(['version']) } : {}),
      ...(cacheDir !== undefined ? { cacheDir: source.valueLocation(['cache', 'dir']) } : {}),
      ...(cacheRemote !== undefined ? { cacheRemote: source.valueLocation(['cache', 'remote']) } : {}),
      args: top.locations,
    },
    ...(options.expansion !== undefined ? { expansion: options.expansion } : {}),
  };
  return { project, diagnostics: ctx.diagnostics };
}

/** `args` (top-level or a target's) as text, in file order, with where each value was written. */
function readArgs(ctx: Context, value: unknown, path: readonly string[]): { args: Record<string, string>; locations: Record<string, SourceLocation> } {
  const args = nameTable<string>();
  const locations = nameTable<SourceLocation>();
  if (!isObj(value)) return { args, locations };
  for (const k of keysInOrder(ctx.source, path, value)) {
    const v = argText(value[k]);
    if (v === undefined) continue;
    args[k] = v;
    locations[k] = ctx.source.valueLocation([...path, k]);
  }
  return { args, locations };
}

/** `cache.dir`, absolute: `~/` is the home, a relative path is relative to the manifest's folder. */
function readCacheDir(ctx: Context): string | undefined {
  const cache = ctx.data['cache'];
  if (!isObj(cache) || typeof cache['dir'] !== 'string' || cache['dir'] === '') return undefined;
  const d = expandHome(cache['dir'], ctx.home);
  return isAbsolute(d) ? d : resolve(ctx.dir, d);
}

/**
 * `cache.remote` and `cache.push` (README, "Sharing a step cache"): a registry repository without
 * a tag or digest; `push: true` needs it.
 */
function readCacheRemote(ctx: Context): { repository: string; push: boolean } | undefined {
  const cache = ctx.data['cache'];
  if (!isObj(cache)) return undefined;
  const push = cache['push'] === true;
  const text = cache['remote'];
  if (typeof text !== 'string' || text === '') {
    if (push) {
      ctx.diagnostics.push(
        error('manifest-missing-key', 'cache.push needs cache.remote: the repository to push steps to', {
          location: ctx.source.valueLocation(['cache', 'push']),
          hint: 'add cache.remote: REGISTRY/REPOSITORY, or remove cache.push',
        }),
      );
    }
    return undefined;
  }
  const bare = text.replace(/^docker:\/\//, '');
  const parsed = parseReference(bare);
  if (!parsed.ok || bare.includes('@') || bare.slice(bare.lastIndexOf('/') + 1).includes(':')) {
    ctx.diagnostics.push(
      error('manifest-invalid-value', `cache.remote '${text}' is not a registry repository${parsed.ok ? ' (it names a tag or digest)' : `: ${parsed.error.message}`}`, {
        location: ctx.source.valueLocation(['cache', 'remote']),
        hint: 'write REGISTRY/REPOSITORY, e.g. registry.example.com/team/steps: each step is a tag of its own there',
      }),
    );
    return undefined;
  }
  return { repository: text, push };
}

/** `outputs.outside`: absolute folders (`~/` expanded); entries the schema refused are left out. */
function readOutsideFolders(ctx: Context): OutsideFolder[] {
  const outputs = ctx.data['outputs'];
  const list = isObj(outputs) && Array.isArray(outputs['outside']) ? (outputs['outside'] as unknown[]) : [];
  return list.flatMap((v, i) => {
    if (typeof v !== 'string') return [];
    const path = expandHome(v, ctx.home);
    if (!isAbsolute(path)) return [];
    return [{ path: resolve(path), location: ctx.source.valueLocation(['outputs', 'outside', i]) }];
  });
}

/** One target, read and checked field by field; undefined when it is not usable (its errors are out). */
function readTarget(ctx: Context, name: string, t: unknown, topArgs: Readonly<Record<string, string>>): Target | undefined {
  if (!NAME_PATTERN.test(name) || !isObj(t)) return undefined;
  const at = (field: string): string[] => ['targets', name, field];
  const nameLoc = ctx.source.entryLocation(['targets', name]);
  const loc: { -readonly [K in keyof TargetLocations]: TargetLocations[K] } = { name: nameLoc, inputs: [], args: {} };
  // A misspelt key (reported by the schema) would make "missing format/source" noise.
  const misspelt = Object.keys(t).some((k) => !TARGET_KEYS.has(k));

  const src = readSource(ctx, name, t, loc, misspelt);
  const fo = readFormatAndOutput(ctx, name, t, loc, misspelt);
  const size = readTargetSize(ctx, name, t, fo.format, loc);
  const squashfs = readTargetSquashfs(ctx, name, t, fo.format, loc);
  const own = readArgs(ctx, t['args'], at('args'));
  const args = nameTable([...Object.entries(topArgs), ...Object.entries(own.args)]);
  loc.args = own.locations;
  const inputs = readInputs(ctx, name, t, loc);
  if (t['test'] !== undefined) loc.test = ctx.source.valueLocation(at('test'));
  const test = typeof t['test'] === 'boolean' ? t['test'] : true;
  const push = readPush(ctx, name, t, loc);

  if (!src.usable || !fo.usable || !size.usable || !squashfs.usable || fo.format === undefined) return undefined;
  const origin = ctx.origins.get(name);
  const output = resolve(ctx.dir, fo.outputText ?? defaultOutput(name, fo.format)).replace(/\/+$/, '') || '/';
  return {
    name,
    ...(src.from ? { from: src.from } : {}),
    ...(src.recipe !== undefined ? { recipe: src.recipe } : {}),
    format: fo.format,
    output,
    outputGiven: fo.outputText !== undefined,
    ...(size.size !== undefined ? { size: size.size } : {}),
    ...(fo.format === 'squashfs' || fo.format === 'sif' ? { squashfs: squashfs.options ?? DEFAULT_SQUASHFS_OPTIONS } : {}),
    args,
    inputs,
    test,
    ...(push.length > 0 ? { push } : {}),
    ...(origin !== undefined ? { origin } : {}),
    dependencies: [...new Set((ctx.refs.get(name) ?? []).map((r) => r.ref))],
    locations: loc,
  };
}

type MutableLocations = { -readonly [K in keyof TargetLocations]: TargetLocations[K] };

function addRef(ctx: Context, name: string, r: TargetRef): void {
  ctx.refs.set(name, [...(ctx.refs.get(name) ?? []), r]);
}

/** Local paths a `from:` reads: no output may touch them. */
function localPathOf(from: SourceRef): string | undefined {
  switch (from.kind) {
    case 'path':
      return from.path;
    case 'oci':
      return from.dir;
    case 'oci-archive':
    case 'docker-archive':
      return from.file;
    case 'docker':
    case 'oras':
    case 'target':
      return undefined;
  }
}

/** `from` and `recipe`: a target needs one or both; a registry reference must parse; the recipe must exist. */
function readSource(ctx: Context, name: string, t: Obj, loc: MutableLocations, misspelt: boolean): { usable: boolean; from?: SourceRef; recipe?: string } {
  const { source, diagnostics } = ctx;
  let usable = true;
  let from: SourceRef | undefined;
  if (t['from'] !== undefined) {
    loc.from = source.valueLocation(['targets', name, 'from']);
    from = typeof t['from'] === 'string' ? parseSourceRef(t['from'], ctx.dir) : undefined;
    if (from === undefined && typeof t['from'] === 'string' && ctx.origins.get(name)?.matrix !== undefined) {
      // Filled in from the matrix, so the schema saw only the placeholder: checked here.
      const { message, hint } = fromPatternDiagnostic(t['from'], `'from' of target '${name}'`);
      diagnostics.push(error('manifest-invalid-source', message, { location: loc.from, hint }));
    }
    const ref = from?.kind === 'docker' || from?.kind === 'oras' ? parseReference(from.ref, { location: loc.from }) : undefined;
    if (ref && !ref.ok) diagnostics.push(ref.error);
    if (from === undefined || (ref && !ref.ok)) usable = false;
    else if (from.kind === 'target') addRef(ctx, name, { ref: from.target, location: loc.from, nameLocation: loc.name, via: 'from' });
    const local = from ? localPathOf(from) : undefined;
    if (local !== undefined) ctx.protectedPaths.push({ path: local, what: `the source '${from!.text}' of target '${name}'`, location: loc.from, owner: name });
  }

  let recipe: string | undefined;
  if (t['recipe'] !== undefined) {
    loc.recipe = source.valueLocation(['targets', name, 'recipe']);
    if (typeof t['recipe'] === 'string' && t['recipe'] !== '') {
      recipe = resolve(ctx.dir, t['recipe']);
      ctx.protectedPaths.push({ path: recipe, what: `the recipe '${t['recipe']}' of target '${name}'`, location: loc.recipe, owner: name });
      const problem = checkRecipeOnce(ctx, recipe, t['recipe']);
      if (problem) {
        diagnostics.push(error(problem.reason, problem.message, { location: loc.recipe, hint: problem.hint }));
        usable = false;
      }
    } else usable = false;
  }

  if (t['from'] === undefined && t['recipe'] === undefined && !misspelt) {
    diagnostics.push(
      error('manifest-missing-source', `target '${name}' has neither 'from' nor 'recipe'`, {
        location: loc.name,
        hint: "add 'from: docker://IMAGE' (or another source), or 'recipe: FILE' with a Bootstrap header",
      }),
    );
    usable = false;
  }
  return { usable, ...(from ? { from } : {}), ...(recipe !== undefined ? { recipe } : {}) };
}

/** `format` and `output`: the format may come from the output's suffix, and must not contradict it. */
function readFormatAndOutput(
  ctx: Context,
  name: string,
  t: Obj,
  loc: MutableLocations,
  misspelt: boolean,
): { usable: boolean; format?: Format; outputText?: string } {
  const { source, diagnostics } = ctx;
  let usable = true;
  let format: Format | undefined;
  let formatBad = false;
  if (t['format'] !== undefined) {
    loc.format = source.valueLocation(['targets', name, 'format']);
    if ((FORMATS as readonly unknown[]).includes(t['format'])) format = t['format'] as Format;
    else formatBad = true;
  }
  let outputText: string | undefined;
  let outputBad = false;
  if (t['output'] !== undefined) {
    loc.output = source.valueLocation(['targets', name, 'output']);
    if (typeof t['output'] === 'string' && t['output'] !== '') outputText = t['output'];
    else outputBad = true;
  }
  const implied = outputText !== undefined ? outputFormat(outputText) : undefined;
  if (format !== undefined && implied !== undefined && format !== implied && outputText !== undefined) {
    diagnostics.push(
      error('manifest-format-mismatch', `output '${outputText}' of target '${name}' names a ${implied} ${implied === 'sandbox' ? 'folder' : 'image'}, but its format is ${format}`, {
        location: loc.output,
        hint: `write 'output: ${outputFor(outputText, format)}', or 'format: ${implied}'`,
        related: loc.format ? [{ message: `format ${format} is set here`, location: loc.format }] : [],
      }),
    );
    usable = false;
  }
  if (format === undefined && !formatBad) {
    if (implied !== undefined) format = implied;
    else if (!outputBad && !misspelt) {
      const hint = "add 'format: sandbox', 'format: ext3', 'format: squashfs' or 'format: sif', or end the output with '/' (sandbox), '.img' (ext3), '.simg' (squashfs) or '.sif' (SIF)";
      diagnostics.push(
        outputText !== undefined
          ? error('manifest-missing-format', `cannot tell the format of target '${name}' from its output '${outputText}'`, { location: loc.output, hint })
          : error('manifest-missing-format', `target '${name}' needs a format`, { location: loc.name, hint }),
      );
    }
  }
  if (format === undefined || outputBad) usable = false;
  return { usable, ...(format !== undefined ? { format } : {}), ...(outputText !== undefined ? { outputText } : {}) };
}

/** `size`: ext3 only. */
function readTargetSize(ctx: Context, name: string, t: Obj, format: Format | undefined, loc: MutableLocations): { usable: boolean; size?: number } {
  if (t['size'] === undefined) return { usable: true };
  const at: PathSegment[] = ['targets', name, 'size'];
  loc.size = ctx.source.valueLocation(at);
  const size = typeof t['size'] === 'string' || typeof t['size'] === 'number' ? parseSize(t['size']) : undefined;
  let usable = size !== undefined;
  if (format !== undefined && format !== 'ext3') {
    ctx.diagnostics.push(
      error('manifest-size-not-ext3', `'size' applies only to ext3 images, but target '${name}' is ${format}`, {
        location: ctx.source.entryLocation(at),
        hint: format === 'squashfs' ? "remove 'size' (a squashfs image is as large as its content), or use 'format: ext3'" : "remove 'size', or use 'format: ext3'",
        related: loc.format ? [{ message: `format ${format} is set here`, location: loc.format }] : [],
      }),
    );
    usable = false;
  }
  return { usable, ...(size !== undefined ? { size } : {}) };
}

/** `squashfs`: squashfs only; each bad field is reported at its value (docs/ARCHITECTURE.md, Images). */
function readTargetSquashfs(ctx: Context, name: string, t: Obj, format: Format | undefined, loc: MutableLocations): { usable: boolean; options?: SquashfsOptions } {
  const value = t['squashfs'];
  if (value === undefined) return { usable: true };
  const at: PathSegment[] = ['targets', name, 'squashfs'];
  loc.squashfs = ctx.source.valueLocation(at);
  // A value of the wrong type was reported by the schema.
  if (!isObj(value)) return { usable: false };
  if (format !== undefined && format !== 'squashfs' && format !== 'sif') {
    ctx.diagnostics.push(
      error('manifest-squashfs-not-squashfs', `'squashfs' applies only to squashfs and SIF images, but target '${name}' is ${format}`, {
        location: ctx.source.entryLocation(at),
        hint: "remove 'squashfs', or use 'format: squashfs' or 'format: sif'",
        related: loc.format ? [{ message: `format ${format} is set here`, location: loc.format }] : [],
      }),
    );
    return { usable: false };
  }
  const text = (k: string): string | undefined => (typeof value[k] === 'string' ? value[k] : undefined);
  const blockSize = typeof value['block_size'] === 'string' || typeof value['block_size'] === 'number' ? parseSize(value['block_size']) : undefined;
  // Values the schema refused (a wrong type, a pattern) are reported already.
  const refused =
    (value['block_size'] !== undefined && blockSize === undefined) ||
    (value['level'] !== undefined && !Number.isInteger(value['level'])) ||
    (value['writer'] !== undefined && !(SQUASHFS_WRITERS as readonly unknown[]).includes(value['writer'])) ||
    (value['compression'] !== undefined && !(SQUASHFS_COMPRESSIONS as readonly unknown[]).includes(value['compression']));
  if (refused) return { usable: false };
  const resolved = resolveSquashfsOptions({
    writer: text('writer'),
    compression: text('compression'),
    level: typeof value['level'] === 'number' ? value['level'] : undefined,
    blockSize,
  });
  for (const p of resolved.problems) {
    const field: PathSegment[] = [...at, p.field];
    ctx.diagnostics.push(error('manifest-squashfs-option', `target '${name}': ${p.message}`, { location: ctx.source.valueLocation(field), hint: p.hint }));
  }
  return resolved.options ? { usable: true, options: resolved.options } : { usable: false };
}

/** `inputs`: paths and globs (no output may touch them), or `target:NAME` (that target's output, built first). */
function readInputs(ctx: Context, name: string, t: Obj, loc: MutableLocations): string[] {
  const inputs: string[] = [];
  if (!Array.isArray(t['inputs'])) return inputs;
  const locations: SourceLocation[] = [];
  t['inputs'].forEach((v: unknown, i) => {
    if (typeof v !== 'string') return;
    inputs.push(v);
    const inputLoc = ctx.source.valueLocation(['targets', name, 'inputs', i]);
    locations.push(inputLoc);
    if (v.startsWith('target:')) addRef(ctx, name, { ref: v.slice('target:'.length), location: inputLoc, nameLocation: loc.name, via: 'inputs' });
    else if (v !== '') ctx.protectedPaths.push({ path: fixedPart(ctx.dir, v), what: `input '${v}' of target '${name}'`, location: inputLoc, owner: name, readAroundOutputs: true });
  });
  loc.inputs = locations;
  return inputs;
}

/**
 * `push`: registry tags, each `docker://REGISTRY/REPOSITORY:TAG` (no digest: the registry computes
 * it). A bad entry is one error at its value; the target stays usable (it builds, `up` refuses
 * nothing else), but the manifest does not validate.
 */
function readPush(ctx: Context, name: string, t: Obj, loc: MutableLocations): PushDestination[] {
  if (!Array.isArray(t['push'])) return [];
  const out: PushDestination[] = [];
  const locations: SourceLocation[] = [];
  t['push'].forEach((v: unknown, i) => {
    if (typeof v !== 'string' || v === '') return;
    const location = ctx.source.valueLocation(['targets', name, 'push', i]);
    const hint = 'write docker://REGISTRY/REPOSITORY:TAG, e.g. docker://registry.example.com/team/app:1.0';
    if (!v.startsWith('docker://')) {
      const scheme = /^[a-z][a-z0-9+.-]*:\/\//.exec(v)?.[0];
      ctx.diagnostics.push(
        error('manifest-invalid-push', `push '${v}' of target '${name}' is not a docker:// reference${scheme !== undefined ? ` (${scheme} is not pushed by up)` : ''}`, {
          location,
          hint: scheme === 'oras://' ? `${hint}; a SIF file goes to oras:// with 'orchestrator push ${name} ${v}'` : hint,
        }),
      );
      return;
    }
    const parsed = parseReference(v);
    if (!parsed.ok) {
      const why = parsed.error.message.replace(/^invalid image reference '[^']*': /, '');
      ctx.diagnostics.push(error('manifest-invalid-push', `push '${v}' of target '${name}': ${why}`, { location, hint }));
      return;
    }
    if (parsed.value.digest !== undefined) {
      ctx.diagnostics.push(error('manifest-invalid-push', `push '${v}' of target '${name}' names a digest; push to a tag`, { location, hint: 'the digest is what the registry computes from what is pushed; remove @sha256:...' }));
      return;
    }
    if (out.some((p) => p.ref === parsed.value.canonical)) {
      ctx.diagnostics.push(error('manifest-invalid-push', `push '${v}' of target '${name}' is listed twice`, { location, hint: 'remove one of them' }));
      return;
    }
    out.push({ text: v, ref: parsed.value.canonical });
    locations.push(location);
  });
  loc.push = locations;
  return out;
}

/** Every `target:X` names a target (not a group, not a typo). */
function checkReferences(ctx: Context): void {
  for (const [name, rs] of ctx.refs) {
    for (const { ref, location, via } of rs) {
      if (ctx.targetSet.has(ref)) continue;
      ctx.diagnostics.push(
        error('manifest-unknown-target', `unknown target '${ref}' in '${via}' of target '${name}'`, {
          location,
          hint: ctx.groupSet.has(ref) ? `'${ref}' is a group; 'from' needs a single target` : didYouMeanHint(ref, ctx.targetNames),
        }),
      );
    }
  }
}

/** Groups: names apart from the targets', members that exist. */
function readGroups(ctx: Context): Group[] {
  const { source, diagnostics } = ctx;
  const groupsData: Obj = isObj(ctx.data['groups']) ? ctx.data['groups'] : {};
  const groups: Group[] = [];
  // Did-you-mean candidates, made once (a manifest may hold many thousand names).
  let candidates: string[] | undefined;
  for (const name of ctx.groupNames) {
    const members = groupsData[name];
    if (!NAME_PATTERN.test(name) || !Array.isArray(members)) continue;
    const nameLoc = source.entryLocation(['groups', name]);
    if (ctx.targetSet.has(name)) {
      diagnostics.push(
        error('manifest-name-conflict', `group '${name}' has the name of a target`, {
          location: nameLoc,
          hint: 'targets and groups share one namespace; rename the group',
          related: [{ message: `target '${name}' is declared here`, location: source.entryLocation(['targets', name]) }],
        }),
      );
    }
    const memberLocs: SourceLocation[] = [];
    const names: string[] = [];
    members.forEach((m: unknown, i) => {
      const mloc = source.valueLocation(['groups', name, i]);
      if (typeof m !== 'string') return;
      names.push(m);
      memberLocs.push(mloc);
      if (NAME_PATTERN.test(m) && !ctx.targetSet.has(m) && !ctx.groupSet.has(m)) {
        candidates ??= [...ctx.targetNames, ...ctx.groupNames];
        diagnostics.push(
          error('manifest-unknown-group-member', `unknown target or group '${m}' in group '${name}'`, {
            location: mloc,
            hint: didYouMeanHint(m, candidates),
          }),
        );
      }
    });
    groups.push({ name, ...(ctx.source.groups.has(name) ? { matrix: true as const } : {}), members: names, locations: { name: nameLoc, members: memberLocs } });
  }
  return groups;
}

/** Targets built from each other, each edge shown. */
function checkTargetCycles(ctx: Context): void {
  const { refs } = ctx;
  for (const cycle of findCycles(ctx.targetNames, (n) => (refs.get(n) ?? []).map((r) => r.ref))) {
    const related: RelatedInformation[] = cycle.map((n, i) => {
      const next = cycle[(i + 1) % cycle.length]!;
      const edge = refs.get(n)!.find((r) => r.ref === next)!;
      return { message: `'${n}' ${edge.via === 'from' ? 'is built from' : 'reads the output of'} '${next}'`, location: edge.location };
    });
    ctx.diagnostics.push(
      error('manifest-cycle', `dependency cycle: ${[...cycle, cycle[0]!].join(' → ')}`, {
        location: refs.get(cycle[0]!)![0]!.nameLocation,
        hint: "a target cannot be built from itself; change one of these 'from' lines",
        related,
      }),
    );
  }
}

/** Groups holding each other. */
function checkGroupCycles(ctx: Context, groups: readonly Group[]): void {
  const groupByName = new Map(groups.map((g) => [g.name, g]));
  for (const cycle of findCycles(
    groups.map((g) => g.name),
    // A member that names a target means the target (as on the command line), not a group.
    (n) => (groupByName.get(n)?.members ?? []).filter((m) => !ctx.targetSet.has(m)),
  )) {
    const related: RelatedInformation[] = cycle.map((n, i) => {
      const next = cycle[(i + 1) % cycle.length]!;
      const g = groupByName.get(n)!;
      return { message: `group '${n}' includes '${next}'`, location: g.locations.members[g.members.indexOf(next)] ?? g.locations.name };
    });
    ctx.diagnostics.push(
      error('manifest-cycle', `group cycle: ${[...cycle, cycle[0]!].join(' → ')}`, {
        location: groupByName.get(cycle[0]!)!.locations.name,
        hint: 'a group cannot include itself; remove one of these members',
        related,
      }),
    );
  }
}

type RecipeProblem = { reason: Reason; message: string; hint?: string } | undefined;
/** Recipe files already looked at in this load: many targets share one recipe. */
const recipeChecks = new WeakMap<Context, Map<string, RecipeProblem>>();

function checkRecipeOnce(ctx: Context, abs: string, written: string): RecipeProblem {
  let known = recipeChecks.get(ctx);
  if (!known) recipeChecks.set(ctx, (known = new Map()));
  const key = `${abs}\0${written}`;
  if (!known.has(key)) known.set(key, checkRecipeFile(abs, written));
  return known.get(key);
}

function checkRecipeFile(abs: string, written: string): RecipeProblem {
  let st;
  try {
    st = statSync(abs);
  } catch {
    let hint: string | undefined;
    try {
      const siblings = readdirSync(dirname(abs));
      const base = abs.slice(dirname(abs).length + 1);
      const near = didYouMeanHint(base, siblings);
      if (near !== undefined) hint = near;
    } catch {
      hint = `the folder '${dirname(written) || '.'}' does not exist either`;
    }
    return { reason: 'manifest-recipe-not-found', message: `recipe file '${written}' not found`, hint: hint ?? 'recipe paths are relative to the folder of orchestrator.yaml' };
  }
  if (!st.isFile()) return { reason: 'manifest-recipe-not-a-file', message: `recipe '${written}' is not a file`, hint: 'a recipe is a Singularity definition file' };
  return undefined;
}
