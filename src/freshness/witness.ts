import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fileSystemNow, settledBefore } from '../core/file-system-now.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { FOLLOW, SHALLOW, signatures, type ReadSet } from './read-set.js';

/**
 * The no-op witness of `up` (`.orchestrator/witness.json`): after a run in which every target was
 * fresh, the stat signature (native/addon/src/tree_stat.c) of every path that run read to decide
 * so: the manifest, the recipes, orchestrator.lock, the project state, every input and source
 * tree, every output, and the folders a glob listed. When the next `up` with the same command
 * line finds every signature unchanged, it reads exactly what the last one read, so it would reach
 * the same verdict: it replays "fresh" without loading the manifest, the recipes or any key.
 *
 * It only ever skips work that would find nothing to do. Any difference (a path touched, added or
 * removed, another tool version, other arguments, a project lock held) falls back to the full
 * check, which is the only one that decides anything and which writes a new witness. Signatures
 * cover ctime, which user space cannot set, so a change cannot hide, except within the clock tick
 * of the run that recorded it: a witness is written only when every path read predates the probe
 * written at that run's start (see `takeProbe`; a whole second before it on file systems with
 * whole-second times), and when no path differs from the signature taken before the run read it
 * (`seen`, or the signature a tree walk took first), whatever the file system's clock says.
 */

const VERSION = 1;
/** Everything besides files that decides a run's outcome: the tool, the manifest, the arguments. */
export type WitnessKey = Readonly<Record<string, string | boolean | readonly string[]>>;

interface WitnessFile {
  readonly version: number;
  readonly key: string;
  /** The targets the run found fresh, in its build order. */
  readonly targets: readonly string[];
  /** [path, flags, signature] */
  readonly entries: ReadonlyArray<readonly [string, number, string]>;
}

/** Where a project keeps its witness, its probe and its lock (the project's StateDir satisfies it). */
export interface WitnessPaths {
  /** The folder the probe is written in (`.orchestrator/`). */
  readonly root: string;
  readonly witness: string;
  /** The project lock: it must be absent for a witness to hold (a running `up` owns the project). */
  readonly lock: string;
}

/**
 * The probe at the start of a full check (fileSystemNow): what changes from then on, even within
 * the same clock tick, has a ctime at least this. Before the first build there is no state folder:
 * the probe is then written in the temp folder (local file systems share the kernel's clock) and
 * removed.
 */
export function takeProbe(paths: Pick<WitnessPaths, 'root'>): number | undefined {
  if (existsSync(paths.root)) return fileSystemNow(paths.root, 'witness.probe');
  const name = `orchestrator-${process.pid}.probe`;
  const now = fileSystemNow(tmpdir(), name);
  rmSync(join(tmpdir(), name), { force: true });
  return now;
}

/** What checkWitness saw: the fresh targets when the witness holds, and the signatures it took. */
export interface WitnessCheck {
  readonly fresh?: readonly string[];
  /** `flags:path` → signature, taken before anything else was read (see recordWitness). */
  readonly seen: ReadonlyMap<string, string>;
}

/**
 * The targets the last all-fresh run found fresh, when everything it read is exactly as it was
 * and `key` is the same; otherwise no `fresh`, and the signatures taken (for recordWitness). Never
 * throws.
 */
export async function checkWitness(paths: WitnessPaths, key: WitnessKey): Promise<WitnessCheck> {
  try {
    const data = JSON.parse(readFileSync(paths.witness, 'utf8')) as WitnessFile;
    if (data.version !== VERSION) return { seen: new Map() };
    const now = await signatures(
      data.entries.map((e) => e[0]),
      Uint8Array.from(data.entries.map((e) => e[1])),
    );
    const seen = new Map(data.entries.map((e, i) => [`${e[1]}:${e[0]}`, now.signatures[i]!]));
    if (data.key !== JSON.stringify(key)) return { seen };
    for (const [i, e] of data.entries.entries()) if (now.signatures[i] !== e[2]) return { seen };
    return { fresh: data.targets, seen };
  } catch {
    return { seen: new Map() };
  }
}

/**
 * Records the witness of an all-fresh run that read `reads`, begun at `probeMs` (takeProbe).
 * Nothing is written (and an older witness is removed) when the run read something signatures
 * cannot cover, or when anything it read may have changed since it was read: a path whose
 * signature differs from the one `seen` before the run read anything (any clock), or whose
 * newest ctime is not older than the probe (a path not seen before). The next run then checks in
 * full. The project lock must be absent for a witness to hold: a running `up` owns the project.
 */
export async function recordWitness(
  paths: WitnessPaths,
  key: WitnessKey,
  run: {
    readonly reads: ReadSet;
    readonly targets: readonly string[];
    readonly probeMs: number | undefined;
    readonly seen?: ReadonlyMap<string, string>;
  },
): Promise<boolean> {
  const file = paths.witness;
  try {
    if (run.probeMs === undefined || run.reads.unwitnessable !== undefined) throw new Error('unwitnessable');
    const { signed } = run.reads;
    const entries: Array<[string, number]> = [
      ...[...run.reads.trees].filter((p) => !signed.has(p)).map((p): [string, number] => [p, FOLLOW]),
      ...[...run.reads.listings].map((p): [string, number] => [p, FOLLOW | SHALLOW]),
    ];
    const now = await signatures(
      entries.map((e) => e[0]),
      Uint8Array.from(entries.map((e) => e[1])),
    );
    let newest = now.newestCtimeMs;
    let coarse = now.coarse;
    for (const s of signed.values()) {
      newest = Math.max(newest, s.newestCtimeMs);
      coarse ||= s.coarse;
    }
    if (!settledBefore(run.probeMs, newest, coarse) || now.signatures.some((s) => s.startsWith('error:'))) throw new Error('racy');
    for (const [i, [p, f]] of entries.entries()) {
      const before = run.seen?.get(`${f}:${p}`);
      if (before !== undefined && before !== now.signatures[i]) throw new Error('changed while read');
    }
    const data: WitnessFile = {
      version: VERSION,
      key: JSON.stringify(key),
      targets: run.targets,
      entries: [
        ...entries.map(([p, f], i): [string, number, string] => [p, f, now.signatures[i]!]),
        ...[...signed].map(([p, s]): [string, number, string] => [p, 0, s.signature]),
        [paths.lock, FOLLOW, 'absent'],
      ],
    };
    await writeFileAtomic(file, JSON.stringify(data));
    return true;
  } catch {
    await rm(file, { force: true }).catch(() => undefined);
    return false;
  }
}

/** The modification time of the running code: a rebuilt tool does not trust an older witness. */
export function toolStamp(): string {
  try {
    return String(statSync(fileURLToPath(import.meta.url)).mtimeMs);
  } catch {
    return 'unknown';
  }
}
