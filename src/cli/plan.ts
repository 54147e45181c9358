import { relative, sep } from 'node:path';
import { IGNORE_FILE, InputFilter } from '../freshness/input-filter.js';
import { expandSelection } from '../graph/expand-selection.js';
import { TargetGraph } from '../graph/target-graph.js';
import type { Project, Target } from '../manifest/project.js';
import { runUp } from '../executor/run-up.js';
import type { UpEvent } from '../executor/up-events.js';
import { formatReason, type StaleReason } from '../freshness/explain.js';
import { loadRecipes } from '../manifest/load-recipes.js';
import { countSummary } from '../report/diagnostics.js';
import { Store } from '../store/store.js';
import { boolOption, listOption } from './args.js';
import { stepName } from '../builder/build-events.js';
import { error } from '../core/diagnostic.js';
import { ok } from '../core/result.js';
import type { RegistryClient } from '../registry/registry-client.js';
import { stepPlannedText } from '../report/up-reporter.js';
import { makeRegistryClient } from './registry-client-factory.js';
import { REMOTE_CACHE_OPTIONS, remoteCacheFromArgs } from './remote-cache-options.js';
import { version } from './version.js';
import { EXIT, printDiagnostics, type Command, failWith } from './command.js';
import { PROJECT_OPTIONS, requireProject } from './project-options.js';
import { FAKEROOT_OPTIONS, plannedBuildMode } from './build-namespace.js';

/** A path as the plan prints it: relative to the project folder; sandbox folders end in '/'. */
function shown(project: Project, abs: string, folder = false): string {
  const r = relative(project.dir, abs).split(sep).join('/');
  const p = r === '' ? '.' : r.startsWith('../') ? abs : r;
  return folder ? `${p}/` : p;
}

/** `1GiB`, `256MiB`, or bytes when no binary unit divides the size. */
function showSize(bytes: number): string {
  for (const [unit, n] of [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes} bytes`;
}

function planEntry(project: Project, t: Target) {
  return {
    name: t.name,
    source: t.from ? { kind: t.from.kind, text: t.from.text } : null,
    recipe: t.recipe ?? null,
    format: t.format,
    output: t.output,
    ...(t.size !== undefined ? { size: t.size } : {}),
    dependencies: [...t.dependencies],
    display: {
      recipe: t.recipe ? shown(project, t.recipe) : null,
      output: shown(project, t.output, t.format === 'sandbox'),
    },
  };
}

/** The plan's lines on what made a target: the matrix variant, parents, args files, variables, --set. */
function originLines(t: Target): string[] {
  const o = t.origin;
  if (o === undefined) return [];
  const lines: string[] = [];
  if (o.matrix) lines.push(`     variant: ${Object.entries(o.matrix).map(([k, v]) => `${k}=${v}`).join(', ')} (matrix of '${o.base}')`);
  if (o.inherits) lines.push(`     inherits: ${o.inherits.join(', ')}`);
  if (o.argsFiles) lines.push(`     args file: ${o.argsFiles.join(', ')}`);
  if (o.env) lines.push(`     env:     ${o.env.map((v) => `$${v}`).join(', ')}`);
  if (o.set) lines.push(`     --set:   ${o.set.join(', ')}`);
  return lines;
}

/** Each `push:` entry of a target, and whether `up` would push it now (and why). */
function pushPlan(t: Target, due: ReadonlyMap<string, string> | undefined): Array<{ text: string; destination: string; push: boolean; why: string | null }> {
  return (t.push ?? []).map((p) => ({ text: p.text, destination: p.ref, push: due?.has(p.ref) === true, why: due?.get(p.ref) ?? null }));
}

export const command: Command = {
  spec: {
    name: 'plan',
    summary: 'show the targets to build, in build order',
    usage: '[TARGET|GROUP ...] [--json] [--remote] [--cache-from REG/REPO ...] [--fakeroot | --no-fakeroot] [-f FILE] [-C DIR]',
    description: [
      "Lists the selected targets (default: the group 'default', else all) and what they are built from, in build order. Each target is fresh or stale; for a stale one, the exact reasons (what changed since its last build).",
      'It contacts no registry, unless --remote (or --cache-from) is given: then each stale target\'s steps are planned and every',
      "step the local cache lacks is asked of the remote step cache (cache.remote, or --cache-from): a step it has is marked 'from remote cache'.",
      'Nothing is pulled but a registry base image the cache lacks (which up would pull first): its digest is part of the steps\' keys.',
    ].join('\n'),
    options: [
      { name: 'json', type: 'boolean', description: 'print the plan as JSON' },
      { name: 'remote', type: 'boolean', description: "ask the remote step cache (cache.remote, or --cache-from) for each stale target's steps" },
      { ...REMOTE_CACHE_OPTIONS.find((o) => o.name === 'cache-from')!, description: 'a registry repository to ask for steps (repeatable; implies --remote; default: the manifest\'s cache.remote)' },
      ...PROJECT_OPTIONS,
      ...FAKEROOT_OPTIONS,
    ],
    positionals: { min: 0 },
  },
  async run(ctx, args) {
    const project = await requireProject(ctx, args);
    if (project === undefined) return EXIT.usage;
    const selection = expandSelection(project, args.positionals);
    if (!selection.ok) {
      return failWith(ctx, selection.error);
    }
    const graph = TargetGraph.fromProject(project);
    const order = graph.buildOrder(selection.value).map((n) => graph.target(n)!);
    const recipes = loadRecipes(project, { cwd: ctx.cwd });
    printDiagnostics(ctx, recipes.diagnostics);
    if (recipes.diagnostics.some((d) => d.severity === 'error')) {
      ctx.stderr.write(`${countSummary(recipes.diagnostics)}\n`);
      return EXIT.usage;
    }
    // What `up` would do: a dry run that builds nothing and contacts no registry (--remote: the step caches).
    const store = await Store.open({ dir: project.cacheDir, base: project.dir, env: ctx.env });
    const remote = boolOption(args, 'remote') || listOption(args, 'cache-from').length > 0;
    const cache = remote ? await remoteCacheFromArgs(ctx, args, { store, ...(project.cacheRemote ? { manifest: { remote: project.cacheRemote.repository, push: false } } : {}) }) : ok(undefined);
    if (!cache.ok) return failWith(ctx, cache.error);
    if (remote && cache.value === undefined) {
      return failWith(ctx, [error('usage', '--remote needs a remote step cache to ask', { hint: 'give --cache-from REG/REPO, or cache.remote in the manifest' })]);
    }
    let client: RegistryClient | undefined;
    const steps = new Map<string, Array<Extract<UpEvent, { type: 'step-planned' }>>>();
    const unprobed = new Map<string, string>();
    const status = new Map<string, { status: 'fresh' | 'stale' | 'kept'; reasons: readonly StaleReason[] }>();
    const pushes = new Map<string, Map<string, string>>();
    const collect = (e: UpEvent): void => {
      if (e.type === 'step-planned') steps.set(e.target, [...(steps.get(e.target) ?? []), e]);
      else if (e.type === 'probe-skipped') unprobed.set(e.target, e.because);
      else if (e.type === 'push-planned') pushes.set(e.target, (pushes.get(e.target) ?? new Map<string, string>()).set(e.destination, e.why));
      else if (e.type === 'target-fresh') status.set(e.target, { status: 'fresh', reasons: [] });
      else if (e.type === 'target-stale') status.set(e.target, { status: 'stale', reasons: e.reasons });
      else if (e.type === 'target-kept') status.set(e.target, { status: 'kept', reasons: [] });
    };
    const dry = await runUp({
      ...(cache.value ? { remoteCache: cache.value.cache, probeRemote: true } : {}),
      project,
      recipes: recipes.byTarget,
      order: order.map((t) => t.name),
      requested: new Set(selection.value),
      jobs: 1,
      keepGoing: true,
      force: false,
      noCache: false,
      noTest: false,
      pull: false,
      dryRun: true,
      store,
      client: remote ? async () => (client ??= await makeRegistryClient(ctx.env)) : () => Promise.reject(new Error('plan contacts no registry')),
      toolVersion: version(),
      onEvent: collect,
      signal: ctx.signal,
    }).finally(async () => {
      await client?.close();
      await cache.value?.close();
    });
    if (!dry.ok) {
      return failWith(ctx, [dry.error]);
    }
    // How `up` would build here (src/runtime/user-namespace.ts): root, subuid or single-id, or why it could not.
    const planned = plannedBuildMode(ctx, args);
    const build = 'error' in planned ? { mode: null, error: planned.error.message } : { mode: planned.mode };
    const ignore = InputFilter.load({ projectDir: project.dir, always: [] });
    const ignored = ignore.hasFile ? { file: IGNORE_FILE, patterns: ignore.rules.length } : null;
    if (boolOption(args, 'json')) {
      const json = {
        manifest: project.file,
        build,
        ignored,
        targets: order.map((t) => {
          const { display: _display, ...rest } = planEntry(project, t);
          const st = status.get(t.name);
          // What made the target (matrix values, parents, args files, variables, --set) and the
          // args it builds with: everything that can change its key besides the files it reads.
          return {
            ...rest,
            args: { ...t.args },
            ...(t.origin ? { origin: t.origin } : {}),
            status: st?.status ?? 'fresh',
            reasons: st?.reasons ?? [],
            ...(t.push && t.push.length > 0 ? { push: pushPlan(t, pushes.get(t.name)) } : {}),
            ...(remote && st?.status === 'stale'
              ? {
                  steps: (steps.get(t.name) ?? []).map((s) => ({ step: stepName(s.step), key: s.key, from: s.from, ...(s.where !== undefined ? { where: s.where } : {}) })),
                  ...(unprobed.has(t.name) ? { unprobed: unprobed.get(t.name) } : {}),
                }
              : {}),
          };
        }),
      };
      ctx.stdout.write(JSON.stringify(json, null, 2) + '\n');
      return EXIT.ok;
    }
    const lines: string[] = [];
    order.forEach((t, i) => {
      const e = planEntry(project, t);
      const st = status.get(t.name);
      lines.push(`${i + 1}. ${t.name}: ${st?.status === 'stale' ? 'stale' : st?.status === 'kept' ? 'modified by hand, used as it is' : 'fresh'}`);
      for (const r of st?.reasons ?? []) lines.push(`     why:     ${formatReason(r)}`);
      for (const s of steps.get(t.name) ?? []) lines.push(`     step:    ${stepName(s.step)}: ${stepPlannedText(s)}`);
      if (unprobed.has(t.name)) lines.push(`     steps:   not probed: ${unprobed.get(t.name)}`);
      lines.push(...originLines(t));
      lines.push(`     source:  ${t.from?.text ?? '(the recipe\'s Bootstrap header)'}`);
      if (e.display.recipe) lines.push(`     recipe:  ${e.display.recipe}`);
      lines.push(`     format:  ${t.format}${t.size !== undefined ? `, ${showSize(t.size)}` : ''}`);
      lines.push(`     output:  ${e.display.output}`);
      if (t.dependencies.length > 0) lines.push(`     needs:   ${t.dependencies.join(', ')}`);
      for (const p of pushPlan(t, pushes.get(t.name))) lines.push(`     push:    ${p.text}: ${p.push ? `would push (${p.why})` : 'pushed, up to date'}`);
    });
    const stale = order.filter((t) => status.get(t.name)?.status === 'stale').length;
    lines.push('error' in planned ? `build mode: none: ${planned.error.message}` : `build mode: ${planned.mode}`);
    if (ignored) lines.push(`ignored: ${ignored.file} (${ignored.patterns} pattern${ignored.patterns === 1 ? '' : 's'})`);
    const fromRemote = [...steps.values()].flat().filter((s) => s.from === 'remote').length;
    lines.push(`${order.length} target${order.length === 1 ? '' : 's'} in build order, ${stale} to build${remote ? `, ${fromRemote} step${fromRemote === 1 ? '' : 's'} from remote cache` : ''}`);
    ctx.stdout.write(lines.join('\n') + '\n');
    return EXIT.ok;
  },
};
