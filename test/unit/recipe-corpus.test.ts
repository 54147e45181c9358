import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../src/recipe/parse-recipe.js';

/**
 * The shared corpus of 60 real public recipes (shared/corpus/recipes, beside the repository or
 * beside a folder above it: ../shared in CI, ../../shared from a worktree in /work/wt; or where
 * $ORCHESTRATOR_CORPUS points). Each must parse, except
 * the ones EXPECTED.tsv lists, which must be rejected at the listed line with the listed reason.
 * The facts checked for every file (agent, section names) come from a plain reading of the text,
 * independent of the parser.
 */
function findCorpus(): { dir?: string; looked: string[] } {
  const fromEnv = process.env['ORCHESTRATOR_CORPUS'];
  const looked: string[] = [];
  if (fromEnv !== undefined) return existsSync(fromEnv) ? { dir: fromEnv, looked } : { looked: [fromEnv] };
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  for (let up = dirname(repo); ; up = dirname(up)) {
    const dir = join(up, 'shared', 'corpus', 'recipes');
    looked.push(dir);
    if (existsSync(dir)) return { dir, looked };
    if (dirname(up) === up) return { looked };
  }
}

const found = findCorpus();
const present = found.dir !== undefined;
const CORPUS = pathToFileURL(`${found.dir ?? '/nonexistent'}/`);

interface Expected {
  line: number;
  why: string;
}

function expectedErrors(): Map<string, Expected> {
  const out = new Map<string, Expected>();
  const rows = readFileSync(new URL('EXPECTED.tsv', CORPUS), 'utf8').trim().split('\n').slice(1);
  for (const row of rows) {
    const [file, parse, line, why] = row.split('\t');
    if (parse === 'error') out.set(file!, { line: Number(line), why: why! });
  }
  return out;
}

/** Independent oracle: `Bootstrap:` values and `%section` words at the start of lines. */
function plainFacts(text: string): { agents: string[]; sections: Set<string> } {
  const agents = [...text.matchAll(/^bootstrap\s*:\s*(\S+)/gim)].map((m) => m[1]!.toLowerCase());
  const sections = new Set([...text.matchAll(/^[ \t]*%([a-z]+)/gim)].map((m) => m[1]!.toLowerCase()));
  return { agents, sections };
}

// The reason is the skipped test's name, so that a run without the corpus shows it was not checked.
if (!present) it.skip(`recipe corpus: no shared corpus found (looked in ${found.looked.join(', ')}; set ORCHESTRATOR_CORPUS)`, () => {});

describe.runIf(present)('recipe corpus', () => {

  const files = present ? readdirSync(CORPUS).filter((f) => f.endsWith('.def')).sort() : [];
  const expected = present ? expectedErrors() : new Map<string, Expected>();

  it('has the 60 recipes and the four expected rejections', () => {
    expect(files).toHaveLength(60);
    expect(expected.size).toBe(4);
  });

  for (const file of files) {
    it(file, () => {
      const text = readFileSync(new URL(file, CORPUS), 'utf8');
      const { recipe, diagnostics } = parseRecipe(text, { file });
      const errors = diagnostics.filter((d) => d.severity === 'error');
      const want = expected.get(file);
      if (want) {
        expect(errors).toHaveLength(1);
        const [e] = errors;
        expect(e!.location?.line).toBe(want.line);
        expect(e!.location?.file).toBe(file);
        // EXPECTED.tsv names the suggestion ("suggest %labels") or the reason ("needs an app name").
        const suggest = /suggest (%\w+)/.exec(want.why)?.[1];
        if (suggest) expect(e!.hint).toBe(`did you mean '${suggest}'?`);
        else expect(`${e!.message}`).toContain(want.why.replace(/^%\w+ /, ''));
        return;
      }
      expect(errors.map((d) => `${d.location?.line}: ${d.message}`)).toEqual([]);
      const facts = plainFacts(text);
      expect(recipe.stages.map((s) => s.bootstrap).filter((a) => a !== undefined)).toEqual(facts.agents);
      const parsed = new Set(recipe.stages.flatMap((s) => s.sections.map((x) => x.name)));
      expect(parsed).toEqual(facts.sections);
    });
  }

  it('keeps known facts of particular recipes', () => {
    const read = (f: string) => parseRecipe(readFileSync(new URL(f, CORPUS), 'utf8'), { file: f }).recipe;
    const multi = read('007-apptainer-apptainer.def');
    expect(multi.stages.map((s) => s.name)).toEqual(['devel', 'final']);
    expect(multi.stages[1]!.sections.find((s) => s.name === 'files')!.args).toBe('from devel');
    // `From:` before `Bootstrap:` (Singularity 2.4 accepted any order) is one stage.
    const anyOrder = read('022-singularityhub-singularity-catalog.def');
    expect(anyOrder.stages).toHaveLength(1);
    expect(anyOrder.stages[0]!.header.get('from')!.value).toBe('ubuntu:16.04');
    expect(anyOrder.stages[0]!.sections.filter((s) => s.app === 'mount').map((s) => s.name)).toEqual(['apphelp', 'apprun']);
  });
});
