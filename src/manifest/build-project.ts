import { statSync, readdirSync } from 'node:fs';
import { homedir as osHomedir } from 'node:os';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { isMap, isScalar } from 'yaml';
import { error, type Diagnostic, type RelatedInformation, type SourceLocation } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { findCycles } from '../core/find-cycles.js';
import { parseReference } from '../registry/reference.js';
import { nameTable } from '../core/name-table.js';
import { defaultOutput, outputFor, outputFormat } from './output-format.js';
import { parseSize } from './parse-size.js';
import { NAME_PATTERN, parseSourceRef } from './parse-source-ref.js';
import { FORMATS, type Format, type Group, type Project, type SourceRef, type Target, type TargetLocations } from './project.js';
import type { YamlSource } from './yaml-source.js';

export interface BuildProjectOptions {
  /** Absolute path of the manifest. */
  readonly file: string;
  readonly source: YamlSource;
  /** The manifest's data (YAML → JS); may hold schema errors, which were reported already. */
  readonly data: unknown;
  /** For `~/` in cache.dir; default the user's home. */
  readonly homedir?: string;
}

type Obj = Record<string, unknown>;
const TARGET_KEYS: ReadonlySet<string> = new Set(['from', 'recipe', 'format', 'output', 'size', 'args', 'inputs', 'test']);
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const argText = (v: unknown): string | undefined =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;

/** Keys of the mapping at `path`, in file order (JS objects put integer-like keys first). */
function keysInOrder(source: YamlSource, path: readonly string[]): string[] {
  const node = source.node(path);
  if (!isMap(node)) return [];
  return node.items.flatMap((p) => (isScalar(p.key) ? [String(p.key.value)] : []));
}

/**
 * The semantic checks of DESIGN.md 2.2 on a manifest's data, and the typed Project. Fields the
 * schema refused are skipped here (their error is already out), so each problem is reported once;
 * every other problem of the file is reported in the same run. The Project is returned only when
 * this step finds no error (the caller also holds back on schema errors).
 */
export function buildProject(options: BuildProjectOptions): { project: Project; diagnostics: Diagnostic[] } {
  const { source, file } = options;
  const dir = dirname(file);
  const data: Obj = isObj(options.data) ? options.data : {};
  const diagnostics: Diagnostic[] = [];

  const topArgs = nameTable<string>();
  const topArgLocations = nameTable<SourceLocation>();
  if (isObj(data['args'])) {
    for (const k of keysInOrder(source, ['args'])) {
      const v = argText(data['args'][k]);
      if (v !== undefined) {
        topArgs[k] = v;
        topArgLocations[k] = source.valueLocation(['args', k]);
      }
    }
  }

  let cacheDir: string | undefined;
  const cache = data['cache'];
  if (isObj(cache) && typeof cache['dir'] === 'string' && cache['dir'] !== '') {
    const d = cache['dir'];
    const home = options.homedir ?? osHomedir();
    cacheDir = d === '~' ? home : d.startsWith('~/') ? join(home, d.slice(2)) : isAbsolute(d) ? d : resolve(dir, d);
  }

  const targetsData: Obj = isObj(data['targets']) ? data['targets'] : {};
  const groupsData: Obj = isObj(data['groups']) ? data['groups'] : {};
  const targetNames = keysInOrder(source, ['targets']);
  const groupNames = keysInOrder(source, ['groups']);
  const targetSet = new Set(targetNames);
  const groupSet = new Set(groupNames);

  const targets: Target[] = [];
  /** `from: target:X` of every target, usable or not, so that references and cycles are checked for all. */
  const refs = new Map<string, Array<{ ref: string; location: SourceLocation; nameLocation: SourceLocation; via: 'from' | 'inputs' }>>();
  const addRef = (name: string, r: { ref: string; location: SourceLocation; nameLocation: SourceLocation; via: 'from' | 'inputs' }): void => {
    refs.set(name, [...(refs.get(name) ?? []), r]);
  };
  for (const name of targetNames) {
    const t = targetsData[name];
    if (!NAME_PATTERN.test(name) || !isObj(t)) continue;
    const at = (field: string): string[] => ['targets', name, field];
    const nameLoc = source.entryLocation(['targets', name]);
    const loc: { -readonly [K in keyof TargetLocations]: TargetLocations[K] } = { name: nameLoc, inputs: [], args: {} };
    let usable = true;
    // A misspelt key (reported by the schema) would make "missing format/source" noise.
    const misspelt = Object.keys(t).some((k) => !TARGET_KEYS.has(k));

    // Source.
    let from: SourceRef | undefined;
    if (t['from'] !== undefined) {
      loc.from = source.valueLocation(at('from'));
      from = typeof t['from'] === 'string' ? parseSourceRef(t['from'], dir) : undefined;
      const ref = from?.kind === 'docker' ? parseReference(from.ref, { location: loc.from }) : undefined;
      if (ref && !ref.ok) diagnostics.push(ref.error);
      if (from === undefined || (ref && !ref.ok)) usable = false;
      else if (from.kind === 'target') addRef(name, { ref: from.target, location: loc.from, nameLocation: nameLoc, via: 'from' });
    }

    // Recipe.
    let recipe: string | undefined;
    if (t['recipe'] !== undefined) {
      loc.recipe = source.valueLocation(at('recipe'));
      if (typeof t['recipe'] === 'string' && t['recipe'] !== '') {
        recipe = resolve(dir, t['recipe']);
        const problem = checkRecipeFile(recipe, t['recipe']);
        if (problem) {
          diagnostics.push(error(problem.reason, problem.message, { location: loc.recipe, hint: problem.hint }));
          usable = false;
        }
      } else usable = false;
    }

    if (t['from'] === undefined && t['recipe'] === undefined && !misspelt) {
      diagnostics.push(
        error('manifest-missing-source', `target '${name}' has neither 'from' nor 'recipe'`, {
          location: nameLoc,
          hint: "add 'from: docker://IMAGE' (or another source), or 'recipe: FILE' with a Bootstrap header",
        }),
      );
      usable = false;
    }

    // Format and output.
    let format: Format | undefined;
    let formatBad = false;
    if (t['format'] !== undefined) {
      loc.format = source.valueLocation(at('format'));
      if ((FORMATS as readonly unknown[]).includes(t['format'])) format = t['format'] as Format;
      else formatBad = true;
    }
    let outputText: string | undefined;
    let outputBad = false;
    if (t['output'] !== undefined) {
      loc.output = source.valueLocation(at('output'));
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
        const hint = "add 'format: sandbox', 'format: ext3' or 'format: squashfs', or end the output with '/' (sandbox), '.img' (ext3) or '.simg' (squashfs)";
        diagnostics.push(
          outputText !== undefined
            ? error('manifest-missing-format', `cannot tell the format of target '${name}' from its output '${outputText}'`, { location: loc.output, hint })
            : error('manifest-missing-format', `target '${name}' needs a format`, { location: nameLoc, hint }),
        );
      }
    }
    if (format === undefined || outputBad) usable = false;

    // Size.
    let size: number | undefined;
    if (t['size'] !== undefined) {
      loc.size = source.valueLocation(at('size'));
      const s = typeof t['size'] === 'string' || typeof t['size'] === 'number' ? parseSize(t['size']) : undefined;
      if (s === undefined) usable = false;
      else size = s;
      if (format !== undefined && format !== 'ext3') {
        diagnostics.push(
          error('manifest-size-not-ext3', `'size' applies only to ext3 images, but target '${name}' is ${format}`, {
            location: source.entryLocation(at('size')),
            hint: format === 'squashfs' ? "remove 'size' (a squashfs image is as large as its content), or use 'format: ext3'" : "remove 'size', or use 'format: ext3'",
            related: loc.format ? [{ message: `format ${format} is set here`, location: loc.format }] : [],
          }),
        );
        usable = false;
      }
    }

    // Args, inputs, test.
    const args = nameTable(Object.entries(topArgs));
    if (isObj(t['args'])) {
      for (const k of keysInOrder(source, at('args'))) {
        const v = argText(t['args'][k]);
        if (v !== undefined) {
          args[k] = v;
          loc.args = nameTable([...Object.entries(loc.args), [k, source.valueLocation(['targets', name, 'args', k])]]);
        }
      }
    }
    const inputs: string[] = [];
    if (Array.isArray(t['inputs'])) {
      t['inputs'].forEach((v: unknown, i) => {
        if (typeof v === 'string') {
          inputs.push(v);
          const inputLoc = source.valueLocation(['targets', name, 'inputs', i]);
          loc.inputs = [...loc.inputs, inputLoc];
          // `target:NAME` as an input: that target's output, built first.
          if (v.startsWith('target:')) addRef(name, { ref: v.slice('target:'.length), location: inputLoc, nameLocation: nameLoc, via: 'inputs' });
        }
      });
    }
    if (t['test'] !== undefined) loc.test = source.valueLocation(at('test'));
    const test = typeof t['test'] === 'boolean' ? t['test'] : true;

    if (!usable || format === undefined) continue;
    const output = resolve(dir, outputText ?? defaultOutput(name, format)).replace(/\/+$/, '') || '/';
    targets.push({
      name,
      ...(from ? { from } : {}),
      ...(recipe !== undefined ? { recipe } : {}),
      format,
      output,
      outputGiven: outputText !== undefined,
      ...(size !== undefined ? { size } : {}),
      args,
      inputs,
      test,
      dependencies: [...new Set((refs.get(name) ?? []).map((r) => r.ref))],
      locations: loc,
    });
  }

  // References between targets.
  for (const [name, { ref, location, via }] of [...refs].flatMap(([n, rs]) => rs.map((r) => [n, r] as const))) {
    if (targetSet.has(ref)) continue;
    diagnostics.push(
      error('manifest-unknown-target', `unknown target '${ref}' in '${via}' of target '${name}'`, {
        location,
        hint: groupSet.has(ref) ? `'${ref}' is a group; 'from' needs a single target` : didYouMeanHint(ref, targetNames),
      }),
    );
  }

  // Groups.
  const groups: Group[] = [];
  for (const name of groupNames) {
    const members = groupsData[name];
    if (!NAME_PATTERN.test(name) || !Array.isArray(members)) continue;
    const nameLoc = source.entryLocation(['groups', name]);
    if (targetSet.has(name)) {
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
      if (NAME_PATTERN.test(m) && !targetSet.has(m) && !groupSet.has(m)) {
        diagnostics.push(
          error('manifest-unknown-group-member', `unknown target or group '${m}' in group '${name}'`, {
            location: mloc,
            hint: didYouMeanHint(m, [...targetNames, ...groupNames]),
          }),
        );
      }
    });
    groups.push({ name, members: names, locations: { name: nameLoc, members: memberLocs } });
  }

  // Cycles: targets built from each other, groups holding each other.
  for (const cycle of findCycles(targetNames, (n) => {
    return (refs.get(n) ?? []).map((r) => r.ref);
  })) {
    const related: RelatedInformation[] = cycle.map((n, i) => {
      const next = cycle[(i + 1) % cycle.length]!;
      const edge = refs.get(n)!.find((r) => r.ref === next)!;
      return { message: `'${n}' ${edge.via === 'from' ? 'is built from' : 'reads the output of'} '${next}'`, location: edge.location };
    });
    diagnostics.push(
      error('manifest-cycle', `dependency cycle: ${[...cycle, cycle[0]!].join(' → ')}`, {
        location: refs.get(cycle[0]!)![0]!.nameLocation,
        hint: "a target cannot be built from itself; change one of these 'from' lines",
        related,
      }),
    );
  }
  const groupByName = new Map(groups.map((g) => [g.name, g]));
  for (const cycle of findCycles(
    groups.map((g) => g.name),
    // A member that names a target means the target (as on the command line), not a group.
    (n) => (groupByName.get(n)?.members ?? []).filter((m) => !targetSet.has(m)),
  )) {
    const related: RelatedInformation[] = cycle.map((n, i) => {
      const next = cycle[(i + 1) % cycle.length]!;
      const g = groupByName.get(n)!;
      return { message: `group '${n}' includes '${next}'`, location: g.locations.members[g.members.indexOf(next)] ?? g.locations.name };
    });
    diagnostics.push(
      error('manifest-cycle', `group cycle: ${[...cycle, cycle[0]!].join(' → ')}`, {
        location: groupByName.get(cycle[0]!)!.locations.name,
        hint: 'a group cannot include itself; remove one of these members',
        related,
      }),
    );
  }

  // Outputs: no two targets write the same path, nothing is written inside a sandbox or over the project.
  const shown = (t: Target): string => (t.outputGiven ? String((targetsData[t.name] as Obj)['output']) : defaultOutput(t.name, t.format));
  const outputLoc = (t: Target): SourceLocation => t.locations.output ?? t.locations.name;
  const firstWriter = new Map<string, Target>();
  for (const t of targets) {
    const prev = firstWriter.get(t.output);
    if (prev) {
      diagnostics.push(
        error('manifest-duplicate-output', `targets '${prev.name}' and '${t.name}' both write '${shown(t)}'`, {
          location: outputLoc(t),
          hint: t.outputGiven ? `give target '${t.name}' another 'output'` : `give target '${t.name}' an 'output' of its own`,
          related: [{ message: `target '${prev.name}' writes it${prev.outputGiven ? ' here' : ' by default'}`, location: outputLoc(prev) }],
        }),
      );
    } else firstWriter.set(t.output, t);
  }
  for (const t of targets) {
    if (t.output === dir || dir.startsWith(t.output + sep) || t.output === '/') {
      diagnostics.push(
        error('manifest-output-contains-project', `output '${shown(t)}' of target '${t.name}' would hold the project itself`, {
          location: outputLoc(t),
          hint: "a build replaces its whole output; choose a folder inside the project such as 'build/'",
        }),
      );
      continue;
    }
    for (const s of targets) {
      if (s === t || s.format !== 'sandbox' || !t.output.startsWith(s.output + sep)) continue;
      diagnostics.push(
        error('manifest-output-inside-sandbox', `output '${shown(t)}' of target '${t.name}' is inside the sandbox of target '${s.name}'`, {
          location: outputLoc(t),
          hint: `a sandbox build replaces its whole folder ('${shown(s)}'); move the output out of it`,
          related: [{ message: `target '${s.name}' writes its sandbox${s.outputGiven ? ' here' : ' by default'}`, location: outputLoc(s) }],
        }),
      );
      break;
    }
  }

  const project: Project = {
    file,
    dir,
    version: 1,
    ...(cacheDir !== undefined ? { cacheDir } : {}),
    args: topArgs,
    targets,
    groups,
    locations: {
      file: source.fileLocation(),
      ...(data['version'] !== undefined ? { version: source.valueLocation(['version']) } : {}),
      ...(cacheDir !== undefined ? { cacheDir: source.valueLocation(['cache', 'dir']) } : {}),
      args: topArgLocations,
    },
  };
  return { project, diagnostics };
}

function checkRecipeFile(abs: string, written: string): { reason: string; message: string; hint?: string } | undefined {
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
