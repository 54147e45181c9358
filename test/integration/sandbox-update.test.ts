import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReference } from '../../src/registry/reference.js';
import { runCli } from '../helpers/cli.js';
import { buildImage, busyboxLayer, pushImage, threeLayers } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

/**
 * A dev sandbox updated in place (docs/ARCHITECTURE.md, Steps) must end up exactly as a full copy of the same
 * image: checked after a %runscript edit, a %post edit, a %post that deletes and re-creates a
 * folder of the base (an opaque folder), and an interrupted update.
 */
let registry: TestRegistry;
let work: string;
let env: NodeJS.ProcessEnv;

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16);
function listing(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, p));
      const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? `l>${readlinkSync(join(root, p))}` : st.isFile() ? `f:${sha(join(root, p))}` : `o:${st.rdev}`;
      out.push(`${p} ${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk('');
  return out;
}

beforeAll(async () => {
  registry = await startRegistry();
  work = mkdtempSync(join(tmpdir(), 'orch-sandbox-update-'));
  env = { ...process.env, ORCHESTRATOR_CACHE: join(work, 'cache') };
  delete env['CI'];
  const ref = parseReference(`${registry.host}/test/dev:1`);
  if (!ref.ok) throw new Error(ref.error.message);
  await pushImage(ref.value, buildImage([await busyboxLayer(), ...(await threeLayers())]));
  mkdirSync(join(work, 'p'));
  writeFileSync(join(work, 'p/orchestrator.yaml'), `version: 1\ntargets:\n  dev:\n    from: docker://${registry.host}/test/dev:1\n    recipe: dev.def\n    format: sandbox\n`);
});
afterAll(async () => {
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

const up = () => runCli(['up', '--progress', 'plain'], { cwd: join(work, 'p'), env });
const recipe = (post: string, runscript: string) => `%post\n    ${post}\n%runscript\n    ${runscript}\n`;

/** The same recipe copied in full by `orchestrator build --sandbox` (the same cached steps). */
async function fullCopy(): Promise<string[]> {
  const out = join(work, 'full');
  rmSync(out, { recursive: true, force: true });
  const r = await runCli(['build', '--sandbox', out, join(work, 'p/dev.def')], { cwd: join(work, 'p'), env });
  expect(r.code).toBe(0);
  return listing(out);
}

describe('sandbox outputs updated in place', () => {
  it('applies only what changed, ending exactly as a full copy would', async () => {
    // `build` needs the source in the recipe; `up` takes it from the manifest: give both the same.
    const header = `Bootstrap: docker\nFrom: ${registry.host}/test/dev:1\n`;
    writeFileSync(join(work, 'p/dev.def'), header + recipe('echo one > /one; mkdir -p /opt/tool && echo t > /opt/tool/t', 'echo v1'));
    const first = await up();
    expect(first.stdout).toContain('dev: exported in');

    const edits = [
      recipe('echo one > /one; mkdir -p /opt/tool && echo t > /opt/tool/t', 'echo v2'),
      recipe('echo two > /two; rm /hello.txt; ln -s /two /link', 'echo v2'),
      recipe('echo two > /two; chmod 4755 /two; rm -rf /data/x; mkdir /data/x; echo fresh > /data/x/fresh', 'echo v3'),
    ];
    for (const text of edits) {
      writeFileSync(join(work, 'p/dev.def'), header + text);
      const r = await up();
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(r.stdout).toContain('dev: sandbox updated in place in');
      expect(listing(join(work, 'p/build/dev'))).toEqual(await fullCopy());
    }
    // The last one re-created a folder of the base: nothing of the old one shows through.
    expect(readdirSync(join(work, 'p/build/dev/data/x'))).toEqual(['fresh']);
    expect((await up()).stdout).toMatch(/built 0, fresh 1/);
  });

  it('writes the whole sandbox again after an interrupted update', async () => {
    mkdirSync(join(work, 'p/.orchestrator/journal'), { recursive: true });
    writeFileSync(join(work, 'p/.orchestrator/journal/dev.json'), '{}\n');
    writeFileSync(join(work, 'p/build/dev/half-applied'), 'x');
    const r = await up();
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain('dev: stale: an update of the sandbox was interrupted; it is written again');
    expect(r.stdout).toContain('dev: exported in');
    expect(listing(join(work, 'p/build/dev'))).toEqual(await fullCopy());
    expect(readdirSync(join(work, 'p/.orchestrator/journal'))).toEqual([]);
  });
});
