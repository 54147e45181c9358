import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { settledBefore } from '../core/file-system-now.js';
import { FOLLOW, ReadSet, signatures } from '../freshness/read-set.js';
import { checkWitness, recordWitness, takeProbe, toolStamp, type WitnessKey } from '../freshness/witness.js';
import { LOCK_FILE_NAME } from '../lock/lock-file.js';
import { manifestPath } from '../manifest/manifest-name.js';
import type { Project } from '../manifest/project.js';
import type { Recipe } from '../recipe/model.js';
import { DEFAULT_PLATFORM, formatPlatform } from '../registry/platform.js';
import { readParsedCache, writeParsedCache, type ParsedKey, type ParsedProject } from '../state/parsed-cache.js';
import { StateDir } from '../state/state-dir.js';
import { CACHE_SCHEMA_VERSION } from '../store/step-key.js';
import type { runUp } from './run-up.js';
import type { UpEvent } from './up-events.js';

/** What of an `up` command line decides whether its witness may answer it. */
export interface UpWitnessRequest {
  readonly cwd: string;
  /** -C and -f, as for loadProject. */
  readonly dir?: string | undefined;
  readonly file?: string | undefined;
  /** The targets and groups asked for. */
  readonly targets: readonly string[];
  /** `--set` values (they change the manifest's targets). */
  readonly set?: readonly string[];
  /** The environment the manifest's `${NAME}` read (a parsed manifest holds only while those are the same). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly force: boolean;
  readonly pull: boolean;
  /** `up --push` pushes whatever the state says: never answered by a witness. */
  readonly push?: boolean;
  readonly dryRun: boolean;
  readonly noCache: boolean;
  readonly noTest: boolean;
  /** orchestrator's version (a witness of another version never holds). */
  readonly toolVersion: string;
}

/** What `afterRun` needs to know of the run that just ended. */
export interface UpRunOutcome {
  readonly project: Project;
  /** The targets of the run, in build order. */
  readonly order: readonly string[];
  /** Nothing was said about the manifest or recipes while loading them. */
  readonly quiet: boolean;
  readonly result: { readonly fresh: number; readonly built: number; readonly failed: number; readonly skipped: number };
  /** The same run again as a dry run, for the re-check after a build. */
  readonly check: (onEvent: (e: UpEvent) => void, reads: ReadSet) => ReturnType<typeof runUp>;
}

/** True for the events of a run in which every target was fresh. */
const freshOnly = (e: UpEvent): boolean => e.type === 'target-fresh' || e.type === 'run-done';

/**
 * The no-op witness policy of `up` (the mechanism is src/freshness/witness.ts; the paths are the
 * project's StateDir): when everything the last all-fresh run read is as it was, the next `up`
 * with the same command line says "fresh" again without loading the manifest, the recipes or the
 * build engine (`checkNoOp`). A run that finds every target fresh leaves a witness of what it read;
 * a build that succeeded is checked again as the next `up` would check it, and leaves one too
 * when that finds everything fresh (`afterRun`). --force, --pull and --dry-run are never answered
 * from a witness and leave none.
 *
 * One instance serves one `up`: `checkNoOp`, then (when that found nothing) `loadParsed` before
 * anything is read, `observe` on every event of the run, and `afterRun`.
 */
export class UpWitness {
  /** What the run reads, for the witness: passed to runUp as its read set. */
  readonly reads = new ReadSet();
  /** The signatures checkNoOp took (a path that changed since cannot hide in the new witness). */
  #seen: ReadonlyMap<string, string> = new Map();
  /** Taken before anything is read: what changes from then on cannot hide in a witness of this run. */
  #probeMs: number | undefined;
  #onlyFresh = true;
  /** The manifest read environment variables: no witness can vouch for them (it is checked before the manifest is read). */
  #readsEnv = false;

  private constructor(
    readonly paths: StateDir,
    readonly key: WitnessKey,
    readonly parsedKey: ParsedKey,
    readonly env: Readonly<Record<string, string | undefined>>,
  ) {}

  /**
   * Where this run's witness lives and what besides files it depends on: the tool, the manifest,
   * the targets asked for and the options that change an outcome; and the key of the parsed
   * manifest cache (the same tool, manifest and home, and the folder paths are shown from). None
   * for --force, --pull, --push and --dry-run.
   */
  static for(request: UpWitnessRequest): UpWitness | undefined {
    if (request.force || request.pull || request.push === true || request.dryRun) return undefined;
    const manifest = manifestPath(request.cwd, { dir: request.dir, file: request.file });
    const tool = `${request.toolVersion}/${CACHE_SCHEMA_VERSION}/${toolStamp()}`;
    const home = homedir();
    return new UpWitness(
      new StateDir(dirname(manifest)),
      {
        tool,
        manifest,
        targets: request.set !== undefined && request.set.length > 0 ? [...request.targets, ...request.set.map((s) => `--set ${s}`)] : request.targets,
        noCache: request.noCache,
        noTest: request.noTest,
        home,
        platform: formatPlatform(DEFAULT_PLATFORM),
      },
      { tool, manifest, home, cwd: request.cwd, set: JSON.stringify(request.set ?? []) },
      request.env ?? process.env,
    );
  }

  /** The targets the witness answers "fresh" for, in build order; undefined when it does not hold. */
  async checkNoOp(): Promise<readonly string[] | undefined> {
    const check = await checkWitness(this.paths, this.key);
    this.#seen = check.seen;
    return check.fresh;
  }

  /**
   * Takes the probe, then returns the manifest and recipes as the last quiet load left them, when
   * none of their files changed since.
   */
  async loadParsed(): Promise<ParsedProject | undefined> {
    this.#probeMs = takeProbe(this.paths);
    return readParsedCache(this.paths, this.parsedKey, this.env);
  }

  /** After a full load: keeps it for the next run when it was quiet, and notes the files read. */
  async parsed(project: Project, byTarget: ReadonlyMap<string, Recipe>, options: { quiet: boolean; fromCache: boolean }): Promise<void> {
    if (!options.fromCache && options.quiet && this.#probeMs !== undefined) {
      await writeParsedCache(this.paths, this.parsedKey, { project, byTarget }, this.#probeMs);
    }
    this.reads.add(project.file);
    for (const t of project.targets) if (t.recipe !== undefined) this.reads.add(t.recipe);
    for (const f of project.expansion?.argsFiles ?? []) this.reads.add(f);
    if (Object.keys(project.expansion?.env ?? {}).length > 0) this.#readsEnv = true;
  }

  /** Every event of the run goes through here: one that is not "fresh" means work was done. */
  observe(e: UpEvent): void {
    if (!freshOnly(e)) this.#onlyFresh = false;
  }

  /**
   * After a run that was not interrupted: an all-fresh run records the witness; a build that
   * succeeded is checked again (witnessAfterBuild).
   */
  async afterRun(run: UpRunOutcome): Promise<void> {
    if (!run.quiet || this.#readsEnv) return;
    if (this.#onlyFresh && run.result.fresh === run.order.length) {
      await recordWitness(this.paths, this.key, { reads: this.reads, targets: run.order, probeMs: this.#probeMs, seen: this.#seen });
    } else if (this.#probeMs !== undefined && run.result.built > 0 && run.result.failed === 0 && run.result.skipped === 0) {
      await this.#witnessAfterBuild(run, this.#probeMs);
    }
  }

  /**
   * After a build that succeeded, the check the next `up` would make, made now and silently: when
   * it finds every target fresh, it leaves the witness that answers that next `up` at once. The
   * manifest and recipes were parsed before the build, so they must be unchanged since the run
   * began (`probeMs`); the check waits out the clock tick of the build's last writes (the project
   * state, orchestrator.lock) and takes a new probe, so that everything it reads predates it.
   */
  async #witnessAfterBuild(run: UpRunOutcome, probeMs: number): Promise<void> {
    const { project } = run;
    const parsedFrom = [project.file, ...new Set(project.targets.flatMap((t) => (t.recipe !== undefined ? [t.recipe] : [])))];
    const before = await signatures(parsedFrom, new Uint8Array(parsedFrom.length).fill(FOLLOW));
    if (!settledBefore(probeMs, before.newestCtimeMs, before.coarse)) return;
    const probe = await this.#probeAfter([this.paths.state, join(project.dir, LOCK_FILE_NAME)]);
    if (probe === undefined) return;
    const reads = new ReadSet();
    for (const p of parsedFrom) reads.add(p);
    let onlyFresh = true;
    const r = await run.check((e) => {
      if (!freshOnly(e)) onlyFresh = false;
    }, reads);
    if (!r.ok || !onlyFresh || r.value.fresh !== run.order.length) return;
    await recordWitness(this.paths, this.key, { reads, targets: run.order, probeMs: probe });
  }

  /**
   * A probe newer than the last change to `written` (the files the build wrote last): taken again,
   * 2 ms apart, until the clock has moved past them (at most 20 tries; undefined when it has not).
   */
  async #probeAfter(written: readonly string[]): Promise<number | undefined> {
    let probe: number | undefined;
    for (let attempt = 0; attempt < 20; attempt++) {
      probe = takeProbe(this.paths);
      const newest = Math.max(...written.map((p) => statSync(p, { throwIfNoEntry: false })?.ctimeMs ?? 0));
      if (probe === undefined || Math.floor(newest) < probe) return probe;
      await sleep(2);
    }
    return probe;
  }
}
