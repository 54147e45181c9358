import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { findCycles } from '../../src/core/find-cycles.js';
import { REPO_ROOT } from '../helpers/cli.js';

/**
 * docs/ARCHITECTURE.md's folder map is the import rule: every folder of src/ has a row, and every
 * import from one folder into another is allowed by that row. The table is parsed from the
 * document, so the document and the rule cannot drift apart.
 */

const DOC = 'docs/ARCHITECTURE.md';
const MAP_HEADING = '## Folders and import directions';

interface SourceFile {
  /** Repository-relative, with `/`: `src/core/digest.ts`. */
  readonly path: string;
  readonly text: string;
}

/** Folder → the folders it may import; `'any'` for the one that may import every folder. */
type ImportTable = ReadonlyMap<string, ReadonlySet<string> | 'any'>;

/** The rows of the map: `| \`folder\` | owns | may import |`. Throws when the table is not there. */
function parseImportTable(markdown: string): ImportTable {
  const start = markdown.indexOf(`\n${MAP_HEADING}\n`);
  if (start < 0) throw new Error(`${DOC} has no section '${MAP_HEADING}'`);
  const rest = markdown.slice(start + MAP_HEADING.length + 2);
  const section = rest.slice(0, rest.search(/\n## /) < 0 ? undefined : rest.search(/\n## /));
  const table = new Map<string, ReadonlySet<string> | 'any'>();
  for (const line of section.split('\n')) {
    const m = /^\|\s*`([a-z0-9-]+)`\s*\|(.*)\|(.*)\|\s*$/.exec(line);
    if (!m) continue;
    const [, folder, , mayImport] = m;
    if (table.has(folder!)) throw new Error(`${DOC}: folder ${folder} has two rows`);
    const cell = mayImport!.trim();
    if (cell === 'every folder') table.set(folder!, 'any');
    else table.set(folder!, new Set([...cell.matchAll(/`([a-z0-9-]+)`/g)].map((x) => x[1]!)));
  }
  if (table.size === 0) throw new Error(`${DOC}: no rows in '${MAP_HEADING}'`);
  return table;
}

/** Folders of src/ that have no row, and rows for folders that are not there. */
function checkMap(folders: readonly string[], table: ImportTable): string[] {
  const problems: string[] = [];
  for (const f of folders) if (!table.has(f)) problems.push(`src/${f}/ has no row in ${DOC} ('${MAP_HEADING}')`);
  for (const f of table.keys()) if (!folders.includes(f)) problems.push(`${DOC} has a row for src/${f}/, which does not exist`);
  for (const [f, allowed] of table) {
    if (allowed === 'any') continue;
    for (const to of allowed) if (!table.has(to)) problems.push(`${DOC}: ${f} may import ${to}, which has no row`);
  }
  return problems;
}

interface ImportArrow {
  readonly file: string;
  readonly line: number;
  readonly specifier: string;
  /** The imported file, repository-relative (`src/core/digest.js` as written). */
  readonly target: string;
  readonly from: string;
  readonly to: string;
}

/** The folder of src/ a repository-relative path is in, if any. */
function folderOf(path: string): string | undefined {
  const m = /^src\/([^/]+)\//.exec(path);
  return m?.[1];
}

/**
 * Every relative import of every file: `import`, `import type`, `export ... from`, `import()` and
 * `typeof import()`, found by TypeScript's own scanner (comments and strings are not imports).
 */
function importArrows(files: readonly SourceFile[]): ImportArrow[] {
  const arrows: ImportArrow[] = [];
  for (const file of files) {
    const from = folderOf(file.path);
    if (from === undefined) continue;
    const info = ts.preProcessFile(file.text, true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const target = posix.normalize(posix.join(posix.dirname(file.path), ref.fileName));
      const to = folderOf(target);
      if (to === undefined) continue;
      const line = file.text.slice(0, ref.pos).split('\n').length;
      arrows.push({ file: file.path, line, specifier: ref.fileName, target, from, to });
    }
  }
  return arrows;
}

/** One line per import the table does not allow: the file, the line, the arrow. */
function checkImports(arrows: readonly ImportArrow[], table: ImportTable): string[] {
  const problems: string[] = [];
  for (const a of arrows) {
    if (a.from === a.to) continue;
    const allowed = table.get(a.from);
    if (allowed === 'any') continue;
    if (allowed?.has(a.to)) continue;
    const may = allowed === undefined ? `${a.from} has no row` : allowed.size === 0 ? `${a.from} may import no other folder` : `${a.from} may import ${[...allowed].join(', ')}`;
    problems.push(`${a.file}:${a.line}: ${a.from} → ${a.to} is not allowed by ${DOC} (import '${a.specifier}'; ${may})`);
  }
  return problems;
}

/** The cycles between folders that a table allows. */
function tableCycles(table: ImportTable): string[] {
  const folders = [...table.keys()];
  const edges = (f: string): string[] => {
    const allowed = table.get(f);
    return allowed === 'any' ? folders.filter((g) => g !== f) : [...(allowed ?? [])].filter((g) => g !== f);
  };
  return findCycles(folders, edges).map((c) => [...c, c[0]].join(' → '));
}

/** The cycles between files (a → b → a), type imports included. */
function fileCycles(files: readonly SourceFile[]): string[] {
  const paths = files.map((f) => f.path);
  const known = new Set(paths);
  const edges = new Map<string, string[]>();
  for (const a of importArrows(files)) {
    const target = a.target.replace(/\.js$/, '.ts');
    const resolved = known.has(target) ? target : known.has(target.replace(/\.ts$/, '.d.ts')) ? target.replace(/\.ts$/, '.d.ts') : undefined;
    if (resolved === undefined || resolved === a.file) continue;
    edges.set(a.file, [...(edges.get(a.file) ?? []), resolved]);
  }
  return findCycles(paths, (p) => edges.get(p) ?? []).map((c) => [...c, c[0]].join(' → '));
}

function sourceFiles(): SourceFile[] {
  const out: SourceFile[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) out.push({ path: relative(REPO_ROOT, path).split('\\').join('/'), text: readFileSync(path, 'utf8') });
    }
  };
  walk(join(REPO_ROOT, 'src'));
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

const srcFolders = (): string[] =>
  readdirSync(join(REPO_ROOT, 'src'), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();

const doc = readFileSync(join(REPO_ROOT, DOC), 'utf8');
const table = parseImportTable(doc);

describe('docs/ARCHITECTURE.md: the folder map', () => {
  it('has one row for every folder of src/, and none for a folder that is gone', () => {
    expect(checkMap(srcFolders(), table)).toEqual([]);
  });

  it('reports a new folder that has no row (src/squashfs)', () => {
    expect(checkMap([...table.keys(), 'squashfs'], table)).toEqual([`src/squashfs/ has no row in ${DOC} ('${MAP_HEADING}')`]);
  });

  it('reports a row whose folder is gone, and an allowed folder that has no row', () => {
    const shrunk = new Map(table);
    shrunk.delete('watch');
    expect(checkMap([...table.keys()].filter((f) => f !== 'report'), shrunk)).toEqual([
      `src/watch/ has no row in ${DOC} ('${MAP_HEADING}')`,
      `${DOC} has a row for src/report/, which does not exist`,
      `${DOC}: report may import watch, which has no row`,
    ]);
  });

  it('is read from the document: the rows and what they allow', () => {
    expect(table.get('core')).toEqual(new Set());
    expect(table.get('cli')).toBe('any');
    expect(table.get('graph')).toEqual(new Set(['core', 'manifest']));
  });
});

describe('import directions', () => {
  const files = sourceFiles();

  it('finds the imports of src/', () => {
    const arrows = importArrows(files);
    expect(arrows.length).toBeGreaterThan(300);
    // `import type` and `import()` are arrows too.
    expect(arrows.some((a) => a.from === 'executor' && a.to === 'builder')).toBe(true);
  });

  it('every import between folders of src/ is allowed by the table', () => {
    expect(checkImports(importArrows(files), table)).toEqual([]);
  });

  it('reports a bad import with the file, the line and the arrow', () => {
    const bad: SourceFile[] = [
      { path: 'src/core/bad.ts', text: "// import nothing from '../cli/args.js' (a comment is no import)\nimport { main } from '../cli/main.js';\n" },
      { path: 'src/image/bad.ts', text: "import { digestHex } from '../core/digest.js';\nimport type { Store } from '../store/store.js';\n" },
      { path: 'src/layers/bad.ts', text: "export { x } from './x.js';\nconst m = await import('../builder/build-target.js');\ntype T = typeof import('../runtime/starter.js');\n" },
      { path: 'src/graph/bad.ts', text: "import '../executor/run-up.js';\nexport * from '../freshness/explain.js';\n" },
    ];
    expect(checkImports(importArrows(bad), table)).toEqual([
      `src/core/bad.ts:2: core → cli is not allowed by ${DOC} (import '../cli/main.js'; core may import no other folder)`,
      `src/image/bad.ts:2: image → store is not allowed by ${DOC} (import '../store/store.js'; image may import core, native)`,
      `src/layers/bad.ts:2: layers → builder is not allowed by ${DOC} (import '../builder/build-target.js'; layers may import core, native)`,
      `src/layers/bad.ts:3: layers → runtime is not allowed by ${DOC} (import '../runtime/starter.js'; layers may import core, native)`,
      `src/graph/bad.ts:1: graph → executor is not allowed by ${DOC} (import '../executor/run-up.js'; graph may import core, manifest)`,
      `src/graph/bad.ts:2: graph → freshness is not allowed by ${DOC} (import '../freshness/explain.js'; graph may import core, manifest)`,
    ]);
  });

  it('keeps core to node: modules (no npm package)', () => {
    const outside = files
      .filter((f) => f.path.startsWith('src/core/'))
      .flatMap((f) => ts.preProcessFile(f.text, true, true).importedFiles.map((r) => `${f.path}: ${r.fileName}`))
      .filter((x) => !/: (node:|\.\/)/.test(x));
    expect(outside).toEqual([]);
  });

  it('lets no folder but cli import src/cli', () => {
    const importers = [...table].filter(([f, allowed]) => f !== 'cli' && (allowed === 'any' || allowed.has('cli'))).map(([f]) => f);
    expect(importers).toEqual([]);
    expect(importArrows(files).filter((a) => a.to === 'cli' && a.from !== 'cli')).toEqual([]);
  });

  it('allows no cycle between folders', () => {
    expect(tableCycles(table)).toEqual([]);
  });

  it('reports a cycle the table would allow', () => {
    const cyclic = new Map(table);
    cyclic.set('store', new Set(['core', 'registry']));
    expect(tableCycles(cyclic)).toEqual(['store → registry → store']);
  });

  it('has no cycle between files', () => {
    expect(fileCycles(files)).toEqual([]);
  });

  it('reports a cycle between files', () => {
    const cyclic: SourceFile[] = [
      { path: 'src/core/a.ts', text: "import type { B } from './b.js';\n" },
      { path: 'src/core/b.ts', text: "import { c } from './c.js';\n" },
      { path: 'src/core/c.ts', text: "export const c = (await import('./a.js')).a;\n" },
    ];
    expect(fileCycles(cyclic)).toEqual(['src/core/a.ts → src/core/b.ts → src/core/c.ts → src/core/a.ts']);
  });
});

describe('docs/ARCHITECTURE.md and the code', () => {
  it('is what the repository cites: nothing refers to the design document outside it', () => {
    const citing: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(join(REPO_ROOT, dir), { withFileTypes: true })) {
        const path = `${dir}/${e.name}`;
        if (e.isDirectory()) {
          if (!['node_modules', 'build', 'dist'].includes(e.name)) walk(path);
        } else if (/\.(ts|mjs|js|c|h|md|sh)$/.test(e.name) && /DESIGN\.md/.test(readFileSync(join(REPO_ROOT, path), 'utf8'))) citing.push(path);
      }
    };
    for (const dir of ['src', 'test', 'native', 'bench', 'scripts', 'docs']) walk(dir);
    if (/DESIGN\.md/.test(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'))) citing.push('README.md');
    expect(citing).toEqual([]);
  });

  it('has every section that a comment of src/ cites', () => {
    const headings = new Set([...doc.matchAll(/^##+ (.+)$/gm)].map((m) => m[1]!.trim()));
    const cited = new Set<string>();
    for (const f of sourceFiles()) for (const m of f.text.matchAll(/docs\/ARCHITECTURE\.md, (?:"([^"]+)"|([A-Z][a-z]+(?: [a-z]+)*))/g)) cited.add((m[1] ?? m[2])!);
    expect([...cited].filter((s) => !headings.has(s))).toEqual([]);
    expect(cited.size).toBeGreaterThan(5);
  });

  it('is linked from the README', () => {
    expect(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')).toContain('(docs/ARCHITECTURE.md)');
  });
});
