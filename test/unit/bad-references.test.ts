import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Rig } from '../helpers/rig.js';

// A malformed registry reference is a usage error (exit 2) that `validate` already finds, in the
// manifest's `from:` and in a recipe's `From:` for `Bootstrap: docker` and `Bootstrap: oras`.
let rig: Rig;
beforeEach(async () => {
  rig = await Rig.create();
});
afterEach(() => rig.cleanup());

const manifestFrom = (from: string): string => `version: 1\ntargets:\n  a:\n    from: ${JSON.stringify(from)}\n    format: sandbox\n`;
const recipeFrom = (from: string): Record<string, string> => ({
  'orchestrator.yaml': 'version: 1\ntargets:\n  a:\n    recipe: a.def\n    format: sandbox\n',
  'a.def': `Bootstrap: docker\nFrom: ${from}\n\n%post\n  true\n`,
});

const CASES: ReadonlyArray<readonly [string, string]> = [
  ['ubuntu:', "invalid image reference 'ubuntu:': tag '' may hold only letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')"],
  ['UBUNTU', "invalid image reference 'UBUNTU': repository name component 'UBUNTU' must be lowercase"],
  ['localhost:99999/x', "invalid image reference 'localhost:99999/x': registry port '99999' must be a number from 1 to 65535"],
  ['-rf', "invalid image reference '-rf': repository name component '-rf' may hold only a-z, 0-9 and single '.', '_', '__' or '-' separators between them"],
];

describe("malformed references in the manifest's from:", () => {
  for (const [ref, message] of CASES) {
    it(`docker://${ref}: validate, plan and up exit 2 at the value`, async () => {
      rig.write({ 'orchestrator.yaml': manifestFrom(`docker://${ref}`) });
      for (const cmd of [['validate'], ['plan'], ['up']]) {
        const r = await rig.cli(cmd);
        expect(r.stderr).toContain(`orchestrator.yaml:4:11: error: ${message}\n`);
        expect(r.stdout).toBe('');
        expect(r.code).toBe(2);
      }
      expect(rig.files()).toEqual(['orchestrator.yaml']);
    });
  }
});

describe('malformed oras:// references', () => {
  for (const [ref, message] of CASES) {
    it(`from: oras://${ref} and Bootstrap: oras From: ${ref}: validate exits 2 at the value`, async () => {
      rig.write({ 'orchestrator.yaml': manifestFrom(`oras://${ref}`) });
      const m = await rig.cli(['validate']);
      expect(m.stderr).toContain(`orchestrator.yaml:4:11: error: ${message}\n`);
      expect(m.code).toBe(2);
      rig.write({ ...recipeFrom(ref), 'a.def': `Bootstrap: oras\nFrom: ${ref}\n\n%post\n  true\n` });
      const r = await rig.cli(['validate']);
      expect(r.stderr).toContain(`a.def:2:7: error: ${message}\n`);
      expect(r.code).toBe(2);
      expect(rig.files()).toEqual(['a.def', 'orchestrator.yaml']);
    });
  }
});

describe("malformed references in a recipe's From:", () => {
  for (const [ref, message] of [...CASES, ['docker://', "invalid image reference 'docker://': the image name is empty"] as const]) {
    it(`From: ${ref}: validate, plan and up exit 2 at the value`, async () => {
      rig.write(recipeFrom(ref));
      for (const cmd of [['validate'], ['plan'], ['up']]) {
        const r = await rig.cli(cmd);
        expect(r.stderr).toContain(`a.def:2:7: error: ${message}\n`);
        expect(r.code).toBe(2);
      }
      expect(rig.files()).toEqual(['a.def', 'orchestrator.yaml']);
    });
  }

  it("From: a b (whitespace) is refused", async () => {
    rig.write(recipeFrom('a b'));
    const r = await rig.cli(['validate']);
    expect(r.stderr).toContain('a.def:2:7: error: ');
    expect(r.code).toBe(2);
  });

  it("a From: that a target's from: replaces is not checked", async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  a:\n    from: docker://ubuntu:24.04\n    recipe: a.def\n    format: sandbox\n',
      'a.def': 'Bootstrap: docker\nFrom: UBUNTU\n\n%post\n  true\n',
    });
    const r = await rig.cli(['validate']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});
