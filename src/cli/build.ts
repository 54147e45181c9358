import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { SourceSpec } from '../builder/build-source.js';
import { buildTarget, type OutputFormat } from '../builder/build-target.js';
import { SourceResolver, splitTag } from '../builder/source-resolver.js';
import { debootstrapLine } from '../builder/debootstrap-source.js';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { fail, ok, type Result } from '../core/result.js';
import { detectImage } from '../image/detect-image.js';
import type { Recipe } from '../recipe/model.js';
import { checkSupported } from '../recipe/check-supported.js';
import { parseRecipe } from '../recipe/parse-recipe.js';
import { resolveRecipe } from '../recipe/resolve-recipe.js';
import type { RegistryClient } from '../registry/registry-client.js';
import { plainBuildReporter } from '../report/plain-build-reporter.js';
import { Store } from '../store/store.js';
import { StatIndex } from '../freshness/stat-index.js';
import { boolOption, listOption, stringOption, type ParsedArgs } from './args.js';
import { EXIT, type Command, type CommandContext, failWith } from './command.js';
import { makeRegistryClient } from './registry-client-factory.js';
import { remoteCacheFromArgs, remoteSummary, REMOTE_CACHE_OPTIONS } from './remote-cache-options.js';
import { version } from './version.js';
import { nameTable } from '../core/name-table.js';
import { buildNeedsRoot } from '../builder/needs-root.js';
import { RealPaths, within } from '../manifest/check-outputs.js';
import { parseSize } from '../manifest/parse-size.js';
import { resolveSquashfsOptions, SQUASHFS_COMPRESSIONS, SQUASHFS_WRITERS, type SquashfsOptions } from '../manifest/squashfs-options.js';
import { parseSourceRef } from '../manifest/parse-source-ref.js';
import type { SourceRef } from '../manifest/project.js';
import { reasonKind } from '../core/reasons.js';
import { FAKEROOT_OPTIONS } from './build-namespace.js';

const SECTION_CHOICES: readonly string[] = ['all', 'none', 'pre', 'setup', 'files', 'post', 'environment', 'runscript', 'startscript', 'test', 'labels', 'help'];

interface BuildSource {
  readonly source?: SourceSpec;
  readonly recipe?: Recipe;
  readonly recipeDir: string;
}

/** SOURCE as `singularity build` reads it: a registry or OCI reference, an image or folder, or a recipe. */
async function classify(ctx: CommandContext, text: string, buildArgs: Record<string, string>, fromGiven: boolean): Promise<Result<BuildSource, Diagnostic[]>> {
  const cwd = ctx.cwd;
  if (text.startsWith('docker://') || text.startsWith('oras://')) return ok({ source: { kind: 'layers', key: null, layers: [], description: text }, recipeDir: cwd });
  for (const scheme of ['oci-archive:', 'docker-archive:', 'oci:'] as const) {
    if (text.startsWith(scheme)) return ok({ source: { kind: 'layers', key: scheme, layers: [], description: text }, recipeDir: cwd });
  }
  const path = resolve(cwd, text);
  const st = await stat(path).catch(() => undefined);
  if (!st) {
    return fail([error('source-not-found', `build source '${text}' does not exist`, { hint: 'give a recipe file, an image file or folder, or docker://NAME[:TAG]' })]);
  }
  if (st.isDirectory()) return ok({ source: { kind: 'local', path }, recipeDir: cwd });
  const image = await detectImage(path);
  if (image.ok) return ok({ source: { kind: 'local', path }, recipeDir: cwd });
  const parsed = parseRecipe(await readFile(path, 'utf8'), { file: text });
  const errors = parsed.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) return fail([...parsed.diagnostics]);
  const resolved = resolveRecipe(parsed.recipe, { args: buildArgs });
  // --from takes the header's place, as a manifest `from:` does: the header's agent is not used.
  const problems = [...resolved.diagnostics, ...(fromGiven ? [] : checkSupported(resolved.recipe))];
  if (problems.some((d) => d.severity === 'error')) return fail(problems);
  return ok({ recipe: resolved.recipe, recipeDir: dirname(path) });
}

export const command: Command = {
  spec: {
    name: 'build',
    summary: 'build one image from a recipe, an image or a registry (singularity build)',
    usage:
      '[--sandbox|--writable] [--force] [--notest] [--no-cache] [--section S] [--build-arg NAME=VALUE ...] [--from REF] [--squashfs-writer W] [--compression C] [--compression-level N] [--block-size SIZE] [--cache-from REG/REPO ...] [--cache-to REG/REPO ...] OUT SOURCE',
    description: [
      'SOURCE is a recipe (definition file), docker://REF, oras://REF, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE,',
      'or an image file (.sif, .simg, .img) or sandbox folder to convert. OUT is a squashfs .simg by default,',
      'a SIF image when it ends in .sif, a sandbox folder with --sandbox, an ext3 .img with --writable.',
      'Recipe steps are cached: a rebuild reruns only what changed.',
      "A .simg (and a SIF's partition) is written by orchestrator's own squashfs writer, which reuses the",
      'compressed blocks of unchanged files from the cache; --squashfs-writer mksquashfs uses squashfs-tools instead.',
      "--from REF builds a recipe on another source than its header's, as a manifest's 'from:' does.",
    ].join('\n'),
    options: [
      { name: 'sandbox', short: 's', type: 'boolean', description: 'build a writable sandbox folder' },
      { name: 'writable', short: 'w', type: 'boolean', description: 'build a writable ext3 image' },
      { name: 'force', short: 'F', type: 'boolean', description: 'replace OUT if it exists' },
      { name: 'notest', short: 'T', type: 'boolean', description: "don't run the %test section" },
      { name: 'no-cache', type: 'boolean', description: 'run every step again instead of using cached ones' },
      {
        name: 'section',
        type: 'string',
        multiple: true,
        value: 'S[,S...]',
        description: "run only these sections of the recipe on top of the existing OUT (Singularity 2.4): setup, files, post, environment, runscript, test, labels, help, all, none",
      },
      { name: 'size', type: 'string', value: 'MiB', description: 'size of a --writable image in MiB (default: content x 1.25, at least 10)' },
      { name: 'build-arg', type: 'string', multiple: true, value: 'NAME=VALUE', description: 'a value for {{ NAME }} in the recipe' },
      { name: 'from', type: 'string', value: 'REF', description: "the recipe's source instead of its header's: docker://REF, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, or an image path" },
      { name: 'squashfs-writer', type: 'string', value: 'W', choices: [...SQUASHFS_WRITERS], description: "who writes a .simg: orchestrator (default, reuses cached blocks) or mksquashfs" },
      { name: 'compression', type: 'string', value: 'C', choices: [...SQUASHFS_COMPRESSIONS], description: 'squashfs compressor: gzip (default), xz, zstd, lz4; lzo with mksquashfs' },
      { name: 'compression-level', type: 'string', value: 'N', description: 'squashfs compression level: gzip 1-9 (9), xz 0-9 (6), zstd 1-22 (15), lz4 0-12 (0)' },
      { name: 'block-size', type: 'string', value: 'SIZE', description: 'squashfs block size: a power of two from 4KiB to 1MiB (default 128KiB)' },
      { name: 'cache-dir', type: 'string', value: 'DIR', description: 'the cache folder (default $ORCHESTRATOR_CACHE, $XDG_CACHE_HOME/orchestrator)' },
      ...FAKEROOT_OPTIONS,
      { name: 'quiet', short: 'q', type: 'boolean', description: "don't show the output of the recipe's scripts" },
      ...REMOTE_CACHE_OPTIONS,
    ],
    positionals: { min: 2, max: 2 },
  },
  async run(ctx, args) {
    const [outArg, sourceArg] = args.positionals as [string, string];
    if (boolOption(args, 'sandbox') && boolOption(args, 'writable')) {
      return failWith(ctx, [error('usage', '--sandbox and --writable cannot be combined', { hint: 'a sandbox is a folder; --writable makes an ext3 image file' })]);
    }
    const format: OutputFormat = boolOption(args, 'sandbox') ? 'sandbox' : boolOption(args, 'writable') ? 'ext3' : imageFileFormat(outArg);
    // A table without a prototype: `__proto__` and `constructor` are names like any other.
    const buildArgs = nameTable<string>();
    for (const kv of listOption(args, 'build-arg')) {
      const eq = kv.indexOf('=');
      if (eq <= 0 || !/^[A-Za-z0-9_]+$/.test(kv.slice(0, eq))) {
        return failWith(ctx, [error('usage', `--build-arg '${kv}' is not NAME=VALUE`, { hint: 'NAME is letters, digits and _, as in {{ NAME }}' })]);
      }
      buildArgs[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const sizeText = stringOption(args, 'size');
    const sizeMiB = sizeText === undefined ? undefined : Number(sizeText);
    if (sizeMiB !== undefined && !(Number.isInteger(sizeMiB) && sizeMiB > 0)) {
      return failWith(ctx, [error('usage', `--size '${sizeText}' is not a whole number of MiB`)]);
    }
    const squashfs = squashfsOptions(args, format);
    if (!squashfs.ok) return failWith(ctx, squashfs.error);
    const output = resolve(ctx.cwd, outArg);
    const sections = listOption(args, 'section').flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
    const bad = sections.find((v) => !SECTION_CHOICES.includes(v));
    if (bad !== undefined) {
      return failWith(ctx, [
        error('usage', `--section '${bad}' is not a section`, { hint: didYouMeanHint(bad, SECTION_CHOICES) ?? `choose from ${SECTION_CHOICES.join(', ')}` }),
      ]);
    }
    const overlap = outputOverSource(ctx.cwd, output, sourceArg);
    if (overlap !== undefined) {
      return failWith(ctx, [
        error('build-output-overlaps-source', `${outArg} ${overlap} the source ${sourceArg}`, { hint: 'a build replaces its whole output; write it somewhere apart from SOURCE' }),
      ]);
    }
    const outputExists = (await stat(output).catch(() => undefined)) !== undefined;
    if (sections.length > 0 && !outputExists) {
      return failWith(ctx, [error('usage', `--section updates an existing image, and ${outArg} does not exist`, { hint: `build it first: orchestrator build ${outArg} ${sourceArg}` })]);
    }
    if (sections.length === 0 && !boolOption(args, 'force') && outputExists) {
      return failWith(ctx, [error('output-exists', `${outArg} already exists`, { hint: `add --force to replace it, or choose another name` })]);
    }
    const fromText = stringOption(args, 'from');
    const fromRef = fromText === undefined ? undefined : parseSourceRef(fromText, ctx.cwd);
    if (fromText !== undefined && (fromRef === undefined || fromRef.kind === 'target')) {
      return failWith(ctx, [
        error('usage', `--from '${fromText}' is not a source`, { hint: 'give docker://REF, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, or the path of an image or sandbox' }),
      ]);
    }
    let classified = await classify(ctx, sourceArg, buildArgs, fromRef !== undefined);
    if (!classified.ok) {
      return failWith(ctx, classified.error.map((d) => withBuildHint(d, false)));
    }
    if (fromRef !== undefined && (!classified.value.recipe || sections.length > 0)) {
      return failWith(ctx, [
        error('usage', sections.length > 0 ? '--from and --section cannot be combined' : `--from replaces a recipe's source, and ${sourceArg} is not a recipe`, {
          hint: sections.length > 0 ? '--section builds on the existing OUT' : `build ${fromText} directly: orchestrator build ${outArg} ${fromText}`,
        }),
      ]);
    }
    if (sections.length > 0) {
      // Singularity 2.4's --section: run only these sections of the recipe, on top of the image
      // OUT is now ('all' is every section; 'none' only rewrites the metadata).
      const recipe = classified.value.recipe;
      if (!recipe) {
        return failWith(ctx, [error('usage', '--section needs a recipe as SOURCE', { hint: 'give the definition file whose sections to run' })]);
      }
      const keep = new Set(sections);
      const last = recipe.stages.at(-1)!;
      const stage = keep.has('all') ? last : { ...last, sections: last.sections.filter((x) => keep.has(x.name)) };
      classified = ok({ recipe: { ...recipe, stages: [stage] }, recipeDir: classified.value.recipeDir, source: { kind: 'local', path: output } });
    }
    if (process.getuid?.() !== 0) return failWith(ctx, [buildNeedsRoot()]);
    const store = await Store.open({ dir: stringOption(args, 'cache-dir'), base: ctx.cwd, env: ctx.env });
    const releaseStore = await store.markActive();
    try {
      return await buildWith(ctx, args, { store, classified: classified.value, format, output, outArg, sourceArg, sizeMiB, squashfs: squashfs.value, ...(fromRef ? { fromRef } : {}) });
    } finally {
      await releaseStore();
    }
  },
};

const SQUASHFS_FLAGS: Readonly<Record<'writer' | 'compression' | 'level' | 'block_size', string>> = {
  writer: '--squashfs-writer',
  compression: '--compression',
  level: '--compression-level',
  block_size: '--block-size',
};

/** The squashfs options of a .simg build (docs/ARCHITECTURE.md, Images); any of them with --sandbox or --writable is a usage error. */
function squashfsOptions(args: ParsedArgs, format: OutputFormat): Result<SquashfsOptions | undefined, Diagnostic[]> {
  const writer = stringOption(args, 'squashfs-writer');
  const compression = stringOption(args, 'compression');
  const levelText = stringOption(args, 'compression-level');
  const blockText = stringOption(args, 'block-size');
  const given = Object.entries({ writer, compression, level: levelText, block_size: blockText }).filter(([, v]) => v !== undefined);
  if (format !== 'squashfs' && format !== 'sif') {
    if (given.length === 0) return ok(undefined);
    const flag = SQUASHFS_FLAGS[given[0]![0] as keyof typeof SQUASHFS_FLAGS];
    return fail([error('usage', `${flag} applies to squashfs and SIF images, not to ${format === 'sandbox' ? '--sandbox' : '--writable'}`, { hint: `leave ${flag} out, or build a .simg or .sif` })]);
  }
  const level = levelText === undefined ? undefined : /^\d+$/.test(levelText) ? Number(levelText) : NaN;
  if (Number.isNaN(level)) return fail([error('usage', `--compression-level '${levelText}' is not a whole number`, { hint: 'e.g. --compression-level 19 with zstd' })]);
  const blockSize = blockText === undefined ? undefined : parseSize(blockText);
  if (blockText !== undefined && blockSize === undefined) return fail([error('usage', `--block-size '${blockText}' is not a size`, { hint: 'write bytes, or a number with KiB or MiB: 128KiB, 1MiB' })]);
  const r = resolveSquashfsOptions({ writer, compression, level, blockSize });
  if (r.problems.length > 0) return fail(r.problems.map((p) => error('usage', `${SQUASHFS_FLAGS[p.field]}: ${p.message}`, { hint: p.hint })));
  return ok(r.options);
}

/** The image file format OUT names: SIF for `.sif` (as `apptainer build x.sif`), else squashfs. */
function imageFileFormat(outArg: string): OutputFormat {
  return outArg.toLowerCase().endsWith('.sif') ? 'sif' : 'squashfs';
}

/**
 * The source SOURCE or `--from` names: `--from REF` replaces the recipe's header; a registry or
 * OCI SOURCE is resolved (pulled, read) here; a local image or folder is as classify() found it.
 */
async function cliSource(
  ctx: CommandContext,
  resolver: SourceResolver,
  o: { given: SourceSpec | undefined; sourceArg: string; fromRef?: SourceRef },
): Promise<Result<SourceSpec | undefined, Diagnostic>> {
  if (o.fromRef) return resolver.fromRef(o.fromRef);
  if (o.given?.kind !== 'layers') return ok(o.given);
  const text = o.sourceArg;
  if (text.startsWith('docker://')) return resolver.fromRef({ kind: 'docker', text, ref: text.slice('docker://'.length) });
  if (text.startsWith('oras://')) return resolver.fromRef({ kind: 'oras', text, ref: text.slice('oras://'.length) });
  if (text.startsWith('oci:')) {
    const [dir, tag] = splitTag(text.slice('oci:'.length));
    return resolver.fromRef({ kind: 'oci', text, dir: resolve(ctx.cwd, dir), ...(tag !== undefined ? { tag } : {}) });
  }
  const kind = text.startsWith('oci-archive:') ? 'oci-archive' : 'docker-archive';
  return resolver.fromRef({ kind, text, file: resolve(ctx.cwd, text.slice(kind.length + 1)) });
}

/**
 * A failure's hint as it applies to one-shot `build`: the manifest's `from:` is `--from` here, and
 * a recipe header's source that cannot be pulled may be replaced with `--from REF`.
 */
function withBuildHint(d: Diagnostic, fromHeader: boolean): Diagnostic {
  const manifestFrom = "give the target a 'from:' in orchestrator.yaml";
  if (d.hint?.includes(manifestFrom)) return { ...d, hint: d.hint.replace(manifestFrom, 'give --from REF') };
  if (fromHeader && reasonKind(d.reason) === 'registry') {
    return { ...d, hint: `${d.hint ?? 'the source could not be pulled'}; or build on another source with --from REF (docker://, oci:, an image path)` };
  }
  return d;
}

/**
 * Whether OUT is, holds or lies inside SOURCE's local path (a recipe, an image, a sandbox, an OCI
 * layout or archive), compared by real paths: `build --sandbox --force sb/inner sb` would copy
 * the sandbox into itself. Registry sources have no local path.
 */
function outputOverSource(cwd: string, output: string, sourceArg: string): 'is' | 'would hold' | 'is inside' | undefined {
  if (sourceArg.startsWith('docker://') || sourceArg.startsWith('oras://')) return undefined;
  const prefix = ['oci-archive:', 'docker-archive:', 'oci:'].find((p) => sourceArg.startsWith(p));
  const text = prefix === undefined ? sourceArg : prefix === 'oci:' ? splitTag(sourceArg.slice(prefix.length))[0] : sourceArg.slice(prefix.length);
  const real = new RealPaths();
  const out = real.ofOutput(output);
  const src = real.of(resolve(cwd, text));
  if (out === src) return 'is';
  if (within(src, out)) return 'would hold';
  if (within(out, src)) return 'is inside';
  return undefined;
}

async function buildWith(
  ctx: CommandContext,
  args: ParsedArgs,
  o: {
    store: Store;
    classified: BuildSource;
    format: OutputFormat;
    output: string;
    outArg: string;
    sourceArg: string;
    sizeMiB: number | undefined;
    squashfs: SquashfsOptions | undefined;
    fromRef?: SourceRef;
  },
): Promise<number> {
  const { store, format, output, outArg, sourceArg, sizeMiB, squashfs } = o;
  const classified = { ok: true as const, value: o.classified };
  let client: RegistryClient | undefined;
  // Hashes of local sources and %files inputs, remembered between one-shot builds.
  const index = await StatIndex.load(resolve(store.root, 'stat-index.json'));
  const name = basename(output).replace(/\.(simg|sqfs|img|sif)$/, '') || 'image';
  const resolver = new SourceResolver({
    store,
    client: async () => (client ??= await makeRegistryClient(ctx.env)),
    debootstrapLogFile: resolve(store.root, 'logs', name, 'debootstrap.log'),
    onDebootstrapEvent: (e) => {
      const line = debootstrapLine(e);
      if (line !== undefined) ctx.stderr.write(`${line}\n`);
    },
    signal: ctx.signal,
  });
  const resolved = await cliSource(ctx, resolver, { given: classified.value.source, sourceArg, ...(o.fromRef ? { fromRef: o.fromRef } : {}) });
  if (!resolved.ok) {
    await client?.close();
    return failWith(ctx, [resolved.error]);
  }
  const source = resolved.value;
  const epochText = ctx.env['SOURCE_DATE_EPOCH'];
  const epoch = epochText !== undefined && /^\d+$/.test(epochText) ? Number(epochText) : undefined;
  const remote = await remoteCacheFromArgs(ctx, args, { store });
  if (!remote.ok) {
    await client?.close();
    return failWith(ctx, remote.error);
  }
  try {
    const r = await buildTarget(
      {
        name,
        ...(source ? { source } : {}),
        ...(classified.value.recipe ? { recipe: classified.value.recipe } : {}),
        recipeDir: classified.value.recipeDir,
        format,
        output,
        ...(sizeMiB !== undefined ? { size: sizeMiB * 1024 * 1024 } : {}),
        ...(squashfs !== undefined ? { squashfs } : {}),
        runTest: !boolOption(args, 'notest'),
        noCache: boolOption(args, 'no-cache'),
        ...(epoch !== undefined ? { epoch } : {}),
      },
      {
        store,
        logDir: resolve(store.root, 'logs', name),
        index,
        toolVersion: version(),
        resolveHeader: (stage, dir) => resolver.header(stage, dir),
        onEvent: plainBuildReporter(ctx.stderr, { showOutput: !boolOption(args, 'quiet'), prefix: false }),
        ...(remote.value ? { remoteCache: remote.value.cache } : {}),
        signal: ctx.signal,
      },
    );
    // Pushes run alongside the build; the summary line reports them.
    const pushed = await remote.value?.cache.settle();
    if (!r.ok) {
      return failWith(ctx, [withBuildHint(r.error, o.fromRef === undefined && classified.value.recipe !== undefined)]);
    }
    const counted = r.value.steps.filter((s) => s.label.kind !== 'source');
    const built = counted.filter((s) => !s.cached).length;
    const remoteText = pushed ? remoteSummary(pushed) : '';
    ctx.stderr.write(`built ${outArg} (${format}): ${built} step${built === 1 ? '' : 's'} run, ${counted.length - built} from cache${remoteText}\n`);
    return EXIT.ok;
  } finally {
    await client?.close();
    await remote.value?.close();
    await index.save().catch(() => undefined);
  }
}
