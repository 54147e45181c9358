import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseRecipe } from '../../src/recipe/parse-recipe.js';
import { scriptOf } from '../../src/recipe/sections.js';
import { formatDiagnostics } from '../../src/report/diagnostics.js';
import { Rig } from '../helpers/rig.js';

const parse = (text: string) => parseRecipe(text, { file: 'r.def' });

describe('odd bytes in a recipe', () => {
  it('a lone CR inside a section line is whitespace, as in Apptainer', () => {
    const r = parse('Bootstrap: scratch\n\n%post\r-c /bin/sh\n  echo hi\n%runscript\r\n  echo run\n');
    expect(r.diagnostics).toEqual([]);
    const post = r.recipe.stages[0]!.sections.find((s) => s.name === 'post')!;
    expect(post.args).toBe('-c /bin/sh');
    expect(post.body).toBe('  echo hi');
    expect(scriptOf(r.recipe.stages[0]!, 'runscript')?.text).toBe('  echo run');
  });

  it('a lone CR after % is the same error as a space after %', () => {
    const r = parse('Bootstrap: scratch\n%\rpost\n  echo hi\n');
    expect(formatDiagnostics(r.diagnostics)).toContain("r.def:2:1: error: '% post' is not a section name (a space after %)");
  });

  it('a NUL byte is one error at its place', () => {
    const r = parse('Bootstrap: scratch\n%post\n  echo a\0b\n  \0\0\0\n');
    expect(r.diagnostics.map((d) => d.reason)).toEqual(['recipe-nul-byte']);
    expect(formatDiagnostics(r.diagnostics)).toBe(
      [
        'r.def:3:9: error: the definition file contains a NUL byte',
        '    echo a\u2400b',
        '          ^',
        '  hint: a definition file is text; is this a binary file, or was it saved as UTF-16?',
      ].join('\n'),
    );
  });
});

describe('validate with odd bytes', () => {
  let rig: Rig;
  beforeEach(async () => {
    rig = await Rig.create();
  });
  afterEach(() => rig.cleanup());

  it('reports a NUL byte in a recipe with its location, exits 2 and writes nothing', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  a:\n    recipe: a.def\n    format: sandbox\n',
      'a.def': 'Bootstrap: scratch\n\0\0%post\n',
    });
    for (const cmd of [['validate'], ['plan'], ['up']]) {
      const r = await rig.cli(cmd);
      expect(r.stderr).toContain('a.def:2:1: error: the definition file contains a NUL byte\n');
      expect(r.code).toBe(2);
    }
    expect(rig.files()).toEqual(['a.def', 'orchestrator.yaml']);
  });
});
