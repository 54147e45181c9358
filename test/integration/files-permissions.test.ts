import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTarget } from '../../src/builder/build-target.js';
import { error } from '../../src/core/diagnostic.js';
import { fail, ok } from '../../src/core/result.js';
import { nativeAddon } from '../../src/native/addon.js';
import { parseRecipe } from '../../src/recipe/parse-recipe.js';
import { resolveRecipe } from '../../src/recipe/resolve-recipe.js';
import { Store } from '../../src/store/store.js';
import { makeBusyboxTree } from '../helpers/busybox-image.js';

// %files must change nothing of the folders it writes into: overlayfs' copy-up keeps a folder's
// mode (set-id and sticky bits too), owner, times and xattrs; missing parents are made as
// Apptainer makes them (mkdir -p: root's, 0755), whatever the umask of the build.

let work: string;
let store: Store;
let base: string;
const oldUmask = process.umask();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'orch-files-perm-'));
  store = await Store.open({ dir: join(work, 'cache') });
  base = join(work, 'base');
  mkdirSync(base);
  makeBusyboxTree(base);
  mkdirSync(join(base, 'opt/deep'), { recursive: true });
  chownSync(join(base, 'opt/deep'), 0, 1234);
  chmodSync(join(base, 'opt/deep'), 0o2770);
  chmodSync(join(base, 'opt'), 0o755);
  nativeAddon().lsetxattr(join(base, 'opt'), 'user.origin', Buffer.from('the base image'));
  utimesSync(join(base, 'opt'), 1_000_000, 1_000_000);
  // A umask that would show any folder made without an explicit chmod.
  process.umask(0o077);
});
afterAll(() => {
  process.umask(oldUmask);
  rmSync(work, { recursive: true, force: true });
});

async function buildSandbox(text: string) {
  const dir = join(work, 'project');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'payload.txt'), 'payload\n');
  const parsed = parseRecipe(text, { file: 'app.def' });
  expect(parsed.diagnostics).toEqual([]);
  const recipe = resolveRecipe(parsed.recipe, { args: {} }).recipe;
  const output = join(dir, 'out');
  const r = await buildTarget(
    { name: 'app', recipe, recipeDir: dir, format: 'sandbox', output, runTest: false, noCache: false },
    {
      store,
      logDir: join(dir, '.orchestrator/logs/app'),
      toolVersion: 'test',
      resolveHeader: async (stage, recipeDir) =>
        stage.bootstrap === 'localimage' ? ok({ kind: 'local', path: join(recipeDir, stage.header.get('from')!.value) }) : fail(error('recipe-agent-unsupported', 'only localimage here')),
      signal: new AbortController().signal,
    },
  );
  if (!r.ok) throw new Error(r.error.message);
  return output;
}

const mode = (p: string) => (statSync(p).mode & 0o7777).toString(8);

describe('%files and the folders of the image', () => {
  it('keeps the mode, owner, times and xattrs of every folder it writes into, and makes new parents 0755 root:root', async () => {
    const out = await buildSandbox(
      ['Bootstrap: localimage', 'From: ../base', '%files', '  payload.txt /tmp/sub/x', '  payload.txt /opt/deep/y', '  payload.txt /new/a/b/z', ''].join('\n'),
    );
    expect(mode(join(out, 'tmp'))).toBe('1777');
    expect(mode(join(out, 'opt/deep'))).toBe('2770');
    expect(statSync(join(out, 'opt/deep')).gid).toBe(1234);
    expect(mode(join(out, 'opt'))).toBe('755');
    expect(nativeAddon().lgetxattr(join(out, 'opt'), 'user.origin').toString()).toBe('the base image');
    // /opt itself was only passed through (its content changed below it, not in it): its times stay.
    expect(statSync(join(out, 'opt')).mtimeMs).toBe(1_000_000_000);
    for (const d of ['tmp/sub', 'new', 'new/a', 'new/a/b']) {
      expect([d, mode(join(out, d)), statSync(join(out, d)).uid, statSync(join(out, d)).gid]).toEqual([d, '755', 0, 0]);
    }
  });
});
