import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { parseDocument } from 'yaml';
import { error, hasErrors, sortDiagnostics, type Diagnostic } from '../core/diagnostic.js';
import { applyVariables } from './apply-variables.js';
import { buildProject } from './build-project.js';
import { expandTargets } from './expand-targets.js';
import { ManifestSource } from './manifest-source.js';
import type { Project } from './project.js';
import { MANIFEST_NAME, manifestPath } from './manifest-name.js';
import { checkSchema } from './schema-check.js';
import { duplicateKeys } from './duplicate-keys.js';
import { YamlSource } from './yaml-source.js';

export { MANIFEST_NAME };

export interface LoadProjectOptions {
  /** The working folder: `dir` and `file` are relative to it, and diagnostics name files relative to it. */
  readonly cwd: string;
  /** `-C DIR`: the project folder (default: cwd). */
  readonly dir?: string | undefined;
  /** `-f FILE`: the manifest, relative to `dir` (default: orchestrator.yaml). */
  readonly file?: string | undefined;
  /** For `~/` in cache.dir (default: the user's home). */
  readonly homedir?: string | undefined;
  /** The environment `${NAME}` reads (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** `--set TARGET.KEY=VALUE` values, in order. */
  readonly set?: readonly string[] | undefined;
  /**
   * Stops a long load (a manifest of many thousand targets): it then ends at once with an
   * `interrupted` diagnostic. Not passed to the worker (it cannot be cloned).
   */
  readonly signal?: AbortSignal | undefined;
}

/**
 * Manifests from this size on are read in a worker thread, so that the main thread stays free for
 * Ctrl-C while they load (parsing is one long synchronous call: seconds for 100k targets). Smaller
 * ones load here: a worker costs ~30 ms to start, more than such a manifest takes.
 */
export const WORKER_THRESHOLD = 256 * 1024;
/** The worker's script: next to this module in dist/ (tsc) and in dist/bundle/ (an entry of the bundle). */
const WORKER_SCRIPT = new URL('./load-project-worker.js', import.meta.url);

export interface LoadProjectResult {
  /** Present exactly when `diagnostics` holds no error. */
  readonly project?: Project;
  /** Every problem of the manifest, sorted by position. */
  readonly diagnostics: readonly Diagnostic[];
}

/** How a path is printed: relative to cwd when it is below it, else absolute. */
export function displayPath(cwd: string, abs: string): string {
  const r = relative(cwd, abs);
  return r === '' || r.startsWith('..') || isAbsolute(r) ? abs : r.split(sep).join('/');
}

/**
 * Reads, parses and checks a project's manifest (docs/ARCHITECTURE.md, Manifest and recipes): YAML syntax, then the JSON
 * Schema, then the semantic checks (references, cycles, outputs, recipe files, formats). Pure apart
 * from reading files: no processes, no network. Never throws for bad input; every problem of the
 * file is a diagnostic pointing at its text.
 */
export async function loadProject(options: LoadProjectOptions): Promise<LoadProjectResult> {
  const base = resolve(options.cwd, options.dir ?? '.');
  const file = manifestPath(options.cwd, options);
  const shown = displayPath(options.cwd, file);

  if (options.dir !== undefined) {
    const st = await stat(base).catch(() => undefined);
    if (!st?.isDirectory()) {
      return { diagnostics: [error('manifest-not-found', `no such folder '${options.dir}'`, { hint: '-C takes the folder that holds orchestrator.yaml' })] };
    }
  }
  const st = await stat(file).catch(() => undefined);
  if (st === undefined) {
    const folder = base === resolve(options.cwd) ? 'the current folder' : `'${displayPath(options.cwd, base)}'`;
    const message = options.file === undefined ? `no ${MANIFEST_NAME} in ${folder}` : `manifest '${shown}' not found`;
    return { diagnostics: [error('manifest-not-found', message, { hint: `create ${MANIFEST_NAME}, or name one with -f FILE or -C DIR` })] };
  }
  if (st.isDirectory()) {
    return { diagnostics: [error('manifest-not-found', `'${shown}' is a folder, not a manifest`, { hint: `use -C '${shown}' for a project folder` })] };
  }
  if (st.size >= WORKER_THRESHOLD && existsSync(WORKER_SCRIPT)) return loadInWorker(options, shown);
  if (options.signal?.aborted) return interrupted(shown);
  return loadManifestFile({ ...options, file, shown });
}

function interrupted(shown: string): LoadProjectResult {
  return { diagnostics: [error('interrupted', `interrupted while reading ${shown}`)] };
}

/** loadProject in a worker thread, ended at once when `options.signal` aborts. */
async function loadInWorker(options: LoadProjectOptions, shown: string): Promise<LoadProjectResult> {
  const { signal, ...data } = options;
  if (signal?.aborted) return interrupted(shown);
  const worker = new Worker(WORKER_SCRIPT, { workerData: data });
  let onAbort: (() => void) | undefined;
  try {
    return await new Promise<LoadProjectResult>((resolvePromise, reject) => {
      onAbort = () => resolvePromise(interrupted(shown));
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.once('message', (r: LoadProjectResult) => resolvePromise(r));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the manifest worker exited with code ${code}`)));
    });
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    await worker.terminate();
  }
}

/**
 * The load proper, after the checks that the manifest exists: YAML, schema, semantic checks. Runs
 * in this thread or in the worker (load-project-worker.ts).
 */
export async function loadManifestFile(options: LoadProjectOptions & { readonly file: string; readonly shown: string }): Promise<LoadProjectResult> {
  const { file, shown } = options;

  const text = await readFile(file, 'utf8');
  // uniqueKeys: false, and our own linear check instead of the package's quadratic one (see duplicate-keys.ts).
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: false, version: '1.2', merge: true });
  const source = new YamlSource(shown, text, doc);

  const syntax: Diagnostic[] = [...doc.errors, ...duplicateKeys(doc)].map((e) => {
    let [start, end] = e.pos;
    if (e.code === 'DUPLICATE_KEY') {
      // The yaml package marks the key's first character; mark the whole key.
      const key = /^("[^"\n]*"|'[^'\n]*'|[^:\s#]+)/.exec(text.slice(start))?.[0] ?? '';
      end = start + Math.max(1, key.length);
    }
    if (restOfLineIsBlank(text, start)) {
      start = afterLastWritten(text, start);
      end = start + 1;
    }
    return error(e.code === 'DUPLICATE_KEY' ? 'manifest-duplicate-key' : 'manifest-yaml', yamlMessage(e.message, e.code, text.slice(start, end)), {
      location: source.span(start, end),
      hint: e.code === 'DUPLICATE_KEY' ? 'each key may appear once in a mapping; merge the two entries' : undefined,
    });
  });
  if (syntax.length > 0) return { diagnostics: sortDiagnostics(syntax) };
  if (doc.contents === null) {
    return {
      diagnostics: [
        error('manifest-empty', `the manifest is empty`, { location: source.fileLocation(), hint: "start it with 'version: 1' and a 'targets:' mapping" }),
      ],
    };
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return { diagnostics: [error('manifest-yaml', `cannot read the manifest: ${message}`, { location: source.fileLocation() })] };
  }

  // Variables first, so that the schema sees values as they will be used; then the schema on the
  // manifest as written; then templates, inherits and matrix, before the semantic checks.
  const set = options.set ?? [];
  const vars = applyVariables({ yaml: source, data, env: options.env ?? process.env, set });
  const written = new ManifestSource(source, vars.overrides);
  const schema = checkSchema(vars.data, written);
  const expanded = expandTargets({ source: written, data: vars.data, dir: dirname(file), envUse: vars.envUse, setUse: vars.setUse });
  const expansion =
    Object.keys(vars.env).length > 0 || expanded.argsFiles.length > 0 || set.length > 0 ? { env: { ...vars.env }, argsFiles: expanded.argsFiles, set: [...set] } : undefined;
  const { project, diagnostics: semantic } = buildProject({
    file,
    source: expanded.source,
    data: expanded.data,
    origins: expanded.origins,
    ...(expansion !== undefined ? { expansion } : {}),
    ...(options.homedir !== undefined ? { homedir: options.homedir } : {}),
  });
  // An error in a field of a template shows once, not once per target that inherits it.
  const diagnostics = dedupe(sortDiagnostics([...vars.diagnostics, ...schema, ...expanded.diagnostics, ...semantic]));
  return hasErrors(diagnostics) ? { diagnostics } : { project, diagnostics };
}

/** The same error at the same place with the same words, once. */
function dedupe(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return diagnostics.filter((d) => {
    const key = JSON.stringify([d.reason, d.message, d.location?.file, d.location?.line, d.location?.column]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** The yaml package's message without its own position and excerpt (we print those ourselves). */
function yamlMessage(message: string, code: string, culprit: string): string {
  const first = message.split('\n')[0] ?? message;
  const cut = first.replace(/ at line \d+, column \d+:?$/, '');
  if (code === 'DUPLICATE_KEY') return `duplicate key '${culprit}'`;
  return `YAML: ${cut.charAt(0).toLowerCase()}${cut.slice(1)}`;
}

function restOfLineIsBlank(text: string, pos: number): boolean {
  const lineEnd = text.indexOf('\n', pos);
  return text.slice(pos, lineEnd === -1 ? undefined : lineEnd).trim() === '';
}

/** Just past the last non-blank character before `pos`: where an unclosed bracket is noticed. */
function afterLastWritten(text: string, pos: number): number {
  let i = Math.min(pos, text.length) - 1;
  while (i > 0 && /\s/.test(text[i] ?? '')) i--;
  return i + 1;
}
