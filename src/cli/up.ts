import { homedir } from 'node:os';
import { dirname } from 'node:path';
import { CACHE_SCHEMA_VERSION } from '../store/step-key.js';
import { error } from '../core/diagnostic.js';
import { checkWitness, toolStamp, type WitnessKey } from '../freshness/witness.js';
import { manifestPath } from '../manifest/manifest-name.js';
import type { ParsedKey } from '../state/parsed-cache.js';
import { DEFAULT_PLATFORM, formatPlatform } from '../registry/platform.js';
import { StateDir } from '../state/state-dir.js';
import { boolOption, stringOption, type ParsedArgs } from './args.js';
import { EXIT, type Command, type CommandContext, failWith } from './command.js';
import { PROJECT_OPTIONS } from './project-options.js';
import { jobsOption, makeUpReporter } from './up-run-options.js';
import { version } from './version.js';

export const command: Command = {
  spec: {
    name: 'up',
    summary: 'build what is stale, in dependency order and in parallel',
    usage: '[TARGET|GROUP ...] [--watch [--debounce MS]] [-j N] [--keep-going] [--force] [--pull] [--no-cache] [--notest] [--dry-run] [--progress P] [-f FILE] [-C DIR]',
    description: [
      "Builds the named targets and groups (default: the group 'default', else all targets) and what they",
      'are built from. A target whose key and output are unchanged does no work; a stale one says why and',
      'reuses every cached step it can. Exit status: 0 built, 1 a build failed, 2 bad manifest or recipe, 130 interrupted.',
      '',
      'With --watch, it then watches exactly what those builds read (the manifest, recipes, %files sources,',
      'declared inputs, local sources; never outputs, .orchestrator/ or the cache) and rebuilds the targets a',
      'change touched and those built from them; a change during a build stops the work it made stale and',
      'starts again. Errors and failed builds are printed and watching goes on. Ctrl-C stops the running',
      'build (cleaned up, previous outputs kept) and exits 130, as any interrupted up (and as a shell reports',
      'for tsc --watch), so that scripts can tell a stop from a finished build.',
    ].join('\n'),
    options: [
      { name: 'watch', short: 'w', type: 'boolean', description: 'after building, rebuild what each change touches, until Ctrl-C' },
      { name: 'debounce', type: 'string', value: 'MS', description: `with --watch: quiet time after the last change before rebuilding (default 200)` },
      { name: 'jobs', short: 'j', type: 'string', value: 'N', description: 'targets built at once (default: the number of CPUs)' },
      { name: 'keep-going', short: 'k', type: 'boolean', description: 'after a failure, build everything that does not depend on it' },
      { name: 'force', type: 'boolean', description: 'rebuild even fresh targets, and discard hand-made changes to sandboxes' },
      { name: 'pull', type: 'boolean', description: 'resolve registry tags again instead of using orchestrator.lock' },
      { name: 'no-cache', type: 'boolean', description: 'run every step again instead of using cached ones' },
      { name: 'notest', type: 'boolean', description: "don't run %test sections" },
      { name: 'dry-run', short: 'n', type: 'boolean', description: 'say what would be built, and why, without building' },
      { name: 'progress', type: 'string', value: 'P', choices: ['auto', 'tty', 'plain', 'json'], description: 'how to show progress' },
      { name: 'cache-dir', type: 'string', value: 'DIR', description: 'the cache folder (default: the manifest\'s cache.dir, $ORCHESTRATOR_CACHE, $XDG_CACHE_HOME/orchestrator)' },
      ...PROJECT_OPTIONS,
    ],
    positionals: { min: 0 },
  },
  async run(ctx, args) {
    const started = Date.now();
    // The watcher (chokidar and friends) loads only for --watch.
    if (boolOption(args, 'watch')) return (await import('./up-watch.js')).runUpWatch(ctx, args);
    if (stringOption(args, 'debounce') !== undefined) {
      return failWith(ctx, [error('usage', '--debounce only applies with --watch')]);
    }
    const jobs = jobsOption(ctx, args);
    if (jobs === undefined) return EXIT.usage;
    // The no-op answer: when everything the last all-fresh run read is as it was, say so again
    // without loading the manifest, the recipes or the build engine (src/freshness/witness.ts).
    const witness = witnessOf(ctx, args);
    let seen: ReadonlyMap<string, string> | undefined;
    if (witness) {
      const check = await checkWitness(witness.paths, witness.key);
      seen = check.seen;
      const fresh = check.fresh;
      if (fresh) {
        const reporter = await makeUpReporter(ctx, args, fresh);
        for (const target of fresh) reporter.listener({ type: 'target-fresh', target });
        reporter.listener({ type: 'run-done', summary: { built: 0, fresh: fresh.length, failed: 0, skipped: 0, stepsCached: 0, ms: Date.now() - started, interrupted: false, fromWitness: true } });
        await reporter.done();
        return EXIT.ok;
      }
    }
    return (await import('./up-full.js')).runUpFull(ctx, args, { jobs, ...(witness ? { witness: { ...witness, seen: seen ?? new Map() } } : {}) });
  },
};

/**
 * Where this run's witness lives and what besides files it depends on: the tool, the manifest,
 * the targets asked for and the options that change an outcome; and the key of the parsed
 * manifest cache (the same tool, manifest and home, and the folder paths are shown from). None for
 * --force, --pull and --dry-run, which are never answered from a witness.
 */
function witnessOf(ctx: CommandContext, args: ParsedArgs): { paths: StateDir; key: WitnessKey; parsedKey: ParsedKey } | undefined {
  if (boolOption(args, 'force') || boolOption(args, 'pull') || boolOption(args, 'dry-run')) return undefined;
  const manifest = manifestPath(ctx.cwd, { dir: stringOption(args, 'directory'), file: stringOption(args, 'file') });
  const tool = `${version()}/${CACHE_SCHEMA_VERSION}/${toolStamp()}`;
  const home = homedir();
  return {
    paths: new StateDir(dirname(manifest)),
    key: {
      tool,
      manifest,
      targets: args.positionals,
      noCache: boolOption(args, 'no-cache'),
      noTest: boolOption(args, 'notest'),
      home,
      platform: formatPlatform(DEFAULT_PLATFORM),
    },
    parsedKey: { tool, manifest, home, cwd: ctx.cwd },
  };
}
