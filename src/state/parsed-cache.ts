import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { settledBefore } from '../core/file-system-now.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { FOLLOW, signatures } from '../freshness/read-set.js';
import type { Recipe } from '../recipe/model.js';
import type { Project } from '../manifest/project.js';
import type { StateDir } from './state-dir.js';

/**
 * The manifest and recipes as `up` last loaded them (`.orchestrator/parsed.json`), with the stat
 * signature of each file they came from (the args files too), and the values of the environment
 * variables its `${NAME}` read (the `--set` values are part of the key). While those files are exactly as they were (and the tool,
 * the folder the paths are shown from and $HOME are the same), loading them again would give the
 * same project and the same recipes: they are read from here instead, without the YAML parser, the
 * schema validator or the recipe parser. Kept only for loads that said nothing (no warning, no
 * error), so an answer from here prints exactly what a load would. A cache: any doubt (a missing,
 * corrupt or older file) means loading in full.
 */

const VERSION = 1;

export type ParsedKey = Readonly<Record<string, string>>;

export interface ParsedProject {
  readonly project: Project;
  readonly byTarget: ReadonlyMap<string, Recipe>;
}

interface ParsedFile {
  readonly version: number;
  readonly key: string;
  /** [path, signature] of the manifest and every recipe. */
  readonly files: ReadonlyArray<readonly [string, string]>;
  readonly project: Project;
  readonly recipes: ReadonlyArray<readonly [string, Recipe]>;
}


/** JSON with Maps (a recipe stage's header) kept as `{ "$map": [[k, v], ...] }`. */
function replacer(_key: string, value: unknown): unknown {
  return value instanceof Map ? { $map: [...value.entries()] } : value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const m = (value as { $map?: unknown }).$map;
    if (Array.isArray(m) && Object.keys(value).length === 1) return new Map(m as Array<[unknown, unknown]>);
  }
  return value;
}

/** The project and recipes last loaded, when nothing they came from has changed; never throws. */
export async function readParsedCache(
  paths: StateDir,
  key: ParsedKey,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ParsedProject | undefined> {
  try {
    const data = JSON.parse(readFileSync(paths.parsed, 'utf8'), reviver) as ParsedFile;
    if (data.version !== VERSION || data.key !== JSON.stringify(key)) return undefined;
    // The variables the manifest's ${NAME} read must have the values they had.
    for (const [name, value] of Object.entries(data.project.expansion?.env ?? {})) if ((env[name] ?? null) !== value) return undefined;
    const now = await signatures(
      data.files.map((f) => f[0]),
      new Uint8Array(data.files.length).fill(FOLLOW),
    );
    for (const [i, f] of data.files.entries()) if (now.signatures[i] !== f[1]) return undefined;
    return { project: data.project, byTarget: new Map(data.recipes) };
  } catch {
    return undefined;
  }
}

/**
 * Keeps a quiet load of `parsed`. As for the witness, every file it came from must be older than
 * `probeMs` (fileSystemNow, taken before the load read anything): a file changed during the
 * load, or in the same clock tick, is not trusted, and the cache is removed instead.
 */
export async function writeParsedCache(paths: StateDir, key: ParsedKey, parsed: ParsedProject, probeMs: number): Promise<boolean> {
  const file = paths.parsed;
  try {
    const paths = [
      parsed.project.file,
      ...new Set([...parsed.project.targets.flatMap((t) => (t.recipe !== undefined ? [t.recipe] : [])), ...(parsed.project.expansion?.argsFiles ?? [])]),
    ];
    const now = await signatures(paths, new Uint8Array(paths.length).fill(FOLLOW));
    if (!settledBefore(probeMs, now.newestCtimeMs, now.coarse) || now.signatures.some((s) => !/^[0-9a-f]{32}$/.test(s))) throw new Error('racy');
    const data: ParsedFile = {
      version: VERSION,
      key: JSON.stringify(key),
      files: paths.map((p, i) => [p, now.signatures[i]!]),
      project: parsed.project,
      recipes: [...parsed.byTarget],
    };
    await writeFileAtomic(file, JSON.stringify(data, replacer));
    return true;
  } catch {
    await rm(file, { force: true }).catch(() => undefined);
    return false;
  }
}
