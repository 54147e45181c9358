import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { takeProbe } from '../../src/freshness/witness.js';
import { StateDir } from '../../src/state/state-dir.js';
import { loadProject } from '../../src/manifest/load-project.js';
import { loadRecipes } from '../../src/manifest/load-recipes.js';
import { readParsedCache, writeParsedCache, type ParsedProject } from '../../src/state/parsed-cache.js';

let dir: string;
let state: StateDir;
const key = { tool: 't', manifest: '/m', home: '/root', cwd: '/' };
const tick = () => new Promise((r) => setTimeout(r, 20));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'orch-parsed-'));
  state = new StateDir(dir);
  mkdirSync(state.root);
  mkdirSync(join(dir, 'rootfs'));
  writeFileSync(join(dir, 'orchestrator.yaml'), 'version: 1\ntargets:\n  a:\n    from: ./rootfs\n    recipe: a.def\n    format: sandbox\n  b:\n    from: target:a\n    recipe: a.def\n    format: squashfs\n');
  writeFileSync(join(dir, 'a.def'), 'Bootstrap: docker\nFrom: debian:12\n%post\n    echo {{ x }}\n%arguments\n    x=1\n');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function load(): Promise<ParsedProject> {
  const { project, diagnostics } = await loadProject({ cwd: dir });
  expect(diagnostics).toEqual([]);
  const recipes = loadRecipes(project!, { cwd: dir });
  expect(recipes.diagnostics).toEqual([]);
  return { project: project!, byTarget: recipes.byTarget };
}

async function store(parsed: ParsedProject): Promise<boolean> {
  await tick();
  return writeParsedCache(state, key, parsed, takeProbe(state)!);
}

describe('the parsed manifest cache', () => {
  it('gives back the same project and recipes (header Maps included) while no file changed', async () => {
    const parsed = await load();
    expect(await store(parsed)).toBe(true);
    const again = await readParsedCache(state, key);
    expect(again?.project).toEqual(parsed.project);
    expect([...again!.byTarget]).toEqual([...parsed.byTarget]);
    expect(again!.byTarget.get('a')!.stages[0]!.header).toBeInstanceOf(Map);
    expect(again!.byTarget.get('a')!.stages[0]!.header.get('from')?.value).toBe('debian:12');
  });

  it.each<[string, () => void]>([
    ['the manifest touched', () => utimesSync(join(dir, 'orchestrator.yaml'), new Date(), new Date())],
    ['a recipe edited to the same size', () => writeFileSync(join(dir, 'a.def'), 'Bootstrap: docker\nFrom: debian:13\n%post\n    echo {{ x }}\n%arguments\n    x=1\n')],
    ['a recipe removed', () => rmSync(join(dir, 'a.def'))],
  ])('answers nothing after %s', async (_, change) => {
    expect(await store(await load())).toBe(true);
    await tick();
    change();
    expect(await readParsedCache(state, key)).toBeUndefined();
  });

  it('answers nothing for another key, and nothing from a corrupt file', async () => {
    expect(await store(await load())).toBe(true);
    expect(await readParsedCache(state, { ...key, cwd: '/elsewhere' })).toBeUndefined();
    writeFileSync(state.parsed, '{"version":1');
    expect(await readParsedCache(state, key)).toBeUndefined();
  });

  it('is not written when a file changed after the probe, and an older one is removed', async () => {
    const parsed = await load();
    expect(await store(parsed)).toBe(true);
    const probe = takeProbe(state)!;
    await tick();
    writeFileSync(join(dir, 'a.def'), 'Bootstrap: docker\nFrom: debian:12\n');
    expect(await writeParsedCache(state, key, parsed, probe)).toBe(false);
    expect(existsSync(state.parsed)).toBe(false);
  });

  it('holds only while the variables, the args file and the --set values the expansion read are the same', async () => {
    writeFileSync(
      join(dir, 'orchestrator.yaml'),
      'version: 1\ntargets:\n  a:\n    from: ./rootfs\n    recipe: a.def\n    format: sandbox\n    output: build/${FLAVOUR:-plain}/\n    args_file: versions.env\n',
    );
    writeFileSync(join(dir, 'versions.env'), 'x=1\n');
    const env = { FLAVOUR: 'dev' };
    const { project } = await loadProject({ cwd: dir, env, set: ['a.args.y=2'] });
    expect(project!.expansion).toEqual({ env: { FLAVOUR: 'dev' }, argsFiles: [join(dir, 'versions.env')], set: ['a.args.y=2'] });
    const parsed = { project: project!, byTarget: loadRecipes(project!, { cwd: dir }).byTarget };
    const setKey = { ...key, set: JSON.stringify(['a.args.y=2']) };
    await tick();
    expect(await writeParsedCache(state, setKey, parsed, takeProbe(state)!)).toBe(true);
    expect((await readParsedCache(state, setKey, env))?.project).toEqual(project);
    // Another value of the variable, the variable unset, other --set values: a full load.
    expect(await readParsedCache(state, setKey, { FLAVOUR: 'prod' })).toBeUndefined();
    expect(await readParsedCache(state, setKey, {})).toBeUndefined();
    expect(await readParsedCache(state, { ...key, set: JSON.stringify(['a.args.y=3']) }, env)).toBeUndefined();
    // The args file edited.
    await tick();
    writeFileSync(join(dir, 'versions.env'), 'x=2\n');
    expect(await readParsedCache(state, setKey, env)).toBeUndefined();
  });
});
