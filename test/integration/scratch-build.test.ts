import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTarget } from '../../src/builder/build-target.js';
import { error } from '../../src/core/diagnostic.js';
import { fail, ok } from '../../src/core/result.js';
import { parseRecipe } from '../../src/recipe/parse-recipe.js';
import { resolveRecipe } from '../../src/recipe/resolve-recipe.js';
import { Store } from '../../src/store/store.js';

// Apptainer's own scratch example (the shared corpus, 005): its %setup writes
// $APPTAINER_ROOTFS/etc/passwd at once, so /etc and the other base folders must be there before
// %setup runs, as Apptainer makes them. The recipe downloads busybox with curl; this machine
// reaches no such host, so a `curl` first on PATH copies the host's busybox instead.

const CORPUS_RECIPE = new URL('../../../shared/corpus/recipes/005-apptainer-apptainer.def', import.meta.url);
const present = existsSync(CORPUS_RECIPE);
const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));

let work: string;
let store: Store;
const oldPath = process.env['PATH'];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'orch-scratch-'));
  store = await Store.open({ dir: join(work, 'cache') });
  const bin = join(work, 'fake-bin');
  mkdirSync(bin);
  // curl -o FILE URL
  writeFileSync(join(bin, 'curl'), `#!/bin/sh\n[ "$1" = -o ] || exit 2\nexec cp ${busybox ?? '/bin/false'} "$2"\n`);
  chmodSync(join(bin, 'curl'), 0o755);
  process.env['PATH'] = `${bin}:${oldPath ?? '/usr/bin:/bin'}`;
});
afterAll(() => {
  process.env['PATH'] = oldPath;
  rmSync(work, { recursive: true, force: true });
});

if (!present) {
  it.skip('Bootstrap: scratch with the corpus recipe: skipped, ../shared/corpus is absent (the shared folder is not beside the repository)', () => undefined);
}
if (!busybox) {
  it.skip('Bootstrap: scratch with the corpus recipe: skipped, busybox is not installed (apt-get install busybox-static)', () => undefined);
}

describe.skipIf(!present || !busybox)('Bootstrap: scratch', () => {
  it("builds Apptainer's scratch example: /etc and the base folders are there before %setup", async () => {
    const text = readFileSync(CORPUS_RECIPE, 'utf8');
    const dir = join(work, 'project');
    mkdirSync(dir);
    writeFileSync(join(dir, 'busybox.def'), text);
    const parsed = parseRecipe(text, { file: 'busybox.def' });
    expect(parsed.diagnostics).toEqual([]);
    const recipe = resolveRecipe(parsed.recipe, { args: {} }).recipe;
    const output = join(dir, 'out');
    const r = await buildTarget(
      { name: 'busybox', recipe, recipeDir: dir, format: 'sandbox', output, runTest: false, noCache: false },
      {
        store,
        logDir: join(dir, '.orchestrator/logs/busybox'),
        toolVersion: 'test',
        resolveHeader: async (stage) => (stage.bootstrap === 'scratch' ? ok({ kind: 'scratch' }) : fail(error('recipe-agent-unsupported', 'only scratch here'))),
        signal: new AbortController().signal,
      },
    );
    expect(r.ok ? r.value.steps.map((s) => s.label.kind) : r.error.message).toEqual(['source', 'setup', 'metadata']);
    expect(readFileSync(join(output, 'etc/passwd'), 'utf8')).toBe('root:!:0:0:root:/root:/bin/sh\n');
    expect(readFileSync(join(output, 'etc/group'), 'utf8')).toBe('root:x:0:\n');
    const mode = (p: string) => (statSync(join(output, p)).mode & 0o7777).toString(8);
    expect(Object.fromEntries(['etc', 'dev', 'proc', 'sys', 'home', 'root', 'tmp', 'var', 'var/tmp', 'bin'].map((d) => [d, mode(d)]))).toEqual({
      etc: '755', dev: '755', proc: '755', sys: '755', home: '755', root: '700', tmp: '1777', var: '755', 'var/tmp': '1777', bin: '755',
    });
    expect(readFileSync(join(output, 'etc/hosts'), 'utf8')).toBe('');
    // The image works: busybox --install linked its applets.
    expect(execFileSync('chroot', [output, '/bin/sh', '-c', 'test /bin/echo -ef /bin/busybox && echo hello from busybox'], { encoding: 'utf8' })).toBe('hello from busybox\n');
  });
});
