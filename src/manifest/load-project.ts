import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { parseDocument } from 'yaml';
import { error, hasErrors, sortDiagnostics, type Diagnostic } from '../core/diagnostic.js';
import { buildProject } from './build-project.js';
import type { Project } from './project.js';
import { MANIFEST_NAME, manifestPath } from './manifest-name.js';
import { checkSchema } from './schema-check.js';
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
}

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

  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, version: '1.2', merge: true });
  const source = new YamlSource(shown, text, doc);

  const syntax: Diagnostic[] = doc.errors.map((e) => {
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

  const schema = checkSchema(data, source);
  const { project, diagnostics: semantic } = buildProject({ file, source, data, ...(options.homedir !== undefined ? { homedir: options.homedir } : {}) });
  const diagnostics = sortDiagnostics([...schema, ...semantic]);
  return hasErrors(diagnostics) ? { diagnostics } : { project, diagnostics };
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
