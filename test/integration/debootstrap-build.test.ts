/**
 * `Bootstrap: debootstrap` for real: debootstrap against the host's own apt mirror, apt-get in
 * %post, a squashfs image that `orchestrator run` runs.
 *
 * A minbase bookworm debootstrap takes minutes, so the store of this file is persistent:
 * $ORCHESTRATOR_TEST_CACHE (default /var/tmp/orchestrator-test-cache)/debootstrap-build. Reruns on
 * the same machine reuse it and take seconds; remove that folder to test the cold path again.
 * Stores of the bad-input tests are fresh temp folders.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildEvent } from '../../src/builder/build-events.js';
import { buildTarget } from '../../src/builder/build-target.js';
import { debootstrapKey, debootstrapSource, hostDebianArch, type DebootstrapEvent } from '../../src/builder/debootstrap-source.js';
import { hostAptMirror } from '../../src/builder/host-apt-mirror.js';
import { SourceResolver } from '../../src/builder/source-resolver.js';
import { parseRecipe } from '../../src/recipe/parse-recipe.js';
import { resolveRecipe } from '../../src/recipe/resolve-recipe.js';
import { Store } from '../../src/store/store.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';

const CACHE = join(process.env['ORCHESTRATOR_TEST_CACHE'] ?? '/var/tmp/orchestrator-test-cache', 'debootstrap-build');

const HELLO = [
  'Bootstrap: debootstrap',
  'OSVersion: bookworm',
  '',
  '%post',
  '    apt-get update && apt-get install -y --no-install-recommends hello',
  '    rm -rf /var/lib/apt/lists/*',
  '',
  '%runscript',
  '    exec hello "$@"',
  '',
].join('\n');

let work: string;
let store: Store;

function recipeOf(text: string) {
  const parsed = parseRecipe(text, { file: 'hello.def' });
  expect(parsed.diagnostics).toEqual([]);
  return resolveRecipe(parsed.recipe, { args: {} }).recipe;
}

async function build(text: string, options: { store: Store; output: string; format?: 'squashfs' | 'sandbox' }) {
  const events: BuildEvent[] = [];
  const debootstrap: DebootstrapEvent[] = [];
  const resolver = new SourceResolver({
    store: options.store,
    client: () => {
      throw new Error('no registry in this test');
    },
    onDebootstrapEvent: (e) => {
      if (e.type !== 'debootstrap-output') debootstrap.push(e);
    },
  });
  const dir = join(work, 'project');
  mkdirSync(dir, { recursive: true });
  const r = await buildTarget(
    { name: 'hello', recipe: recipeOf(text), recipeDir: dir, format: options.format ?? 'squashfs', output: options.output, runTest: true, noCache: false },
    {
      store: options.store,
      logDir: join(dir, '.orchestrator/logs/hello'),
      toolVersion: 'test',
      resolveHeader: (stage, recipeDir) => resolver.header(stage, recipeDir),
      onEvent: (e) => events.push(e),
      signal: new AbortController().signal,
    },
  );
  return { r, events, debootstrap };
}

/** Temps this process left in a store (the store may be shared with other test processes). */
function ourTemps(s: Store): string[] {
  return readdirSync(s.tmpDir).filter((n) => n.startsWith(`${process.pid}-`));
}

let first: Awaited<ReturnType<typeof build>>;
let firstMs = 0;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'orch-debootstrap-'));
  mkdirSync(CACHE, { recursive: true });
  store = await Store.open({ dir: CACHE });
  const t0 = Date.now();
  first = await build(HELLO, { store, output: join(work, 'hello.simg') });
  firstMs = Date.now() - t0;
}, 40 * 60_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('Bootstrap: debootstrap', () => {
  it('builds a bookworm image whose %post installs a package with apt-get', () => {
    expect(first.r.ok ? first.r.value.steps.map((s) => s.label.kind) : first.r.error).toEqual(['source', 'post', 'metadata']);
    // Made here, or found from an earlier run of this file (the store is persistent).
    expect(first.debootstrap.map((e) => e.type)).toEqual(expect.arrayContaining([expect.stringMatching(/^debootstrap-(done|cached)$/)]));
    expect(first.events.find((e) => e.type === 'source-ready')).toMatchObject({ description: `debootstrap bookworm (${hostDebianArch()})` });
    expect(existsSync(join(work, 'hello.simg'))).toBe(true);
    expect(ourTemps(store)).toEqual([]);
    // Visible in the test output: how long the first build took on this machine.
    const done = first.debootstrap.find((e) => e.type === 'debootstrap-done');
    console.log(`debootstrap build: ${done ? `debootstrap ran, ${(done.ms / 1000).toFixed(1)} s` : 'debootstrap cached'}; whole build ${(firstMs / 1000).toFixed(1)} s`);
  });

  it('orchestrator run IMAGE runs the package the image installed', async () => {
    const r = await runCli(['run', join(work, 'hello.simg')], { cwd: work });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('Hello, world!\n');
    expect(r.code).toBe(0);
  });

  it('the root has apt sources for the suite and the mirror, no .deb files or package lists, nothing of the host', async () => {
    const mirror = await hostAptMirror('bookworm');
    expect(mirror).toBeDefined();
    const { hex } = debootstrapKey({ suite: 'bookworm', mirror: mirror!.uri, include: [], arch: hostDebianArch(), method: 'mmdebstrap' });
    const root = store.snapshotPath(`debootstrap-${hex}`);
    expect(readFileSync(join(root, 'etc/apt/sources.list'), 'utf8')).toBe(`deb ${mirror!.uri} bookworm main\n`);
    expect(readdirSync(join(root, 'var/cache/apt/archives')).filter((n) => n.endsWith('.deb'))).toEqual([]);
    expect(readdirSync(join(root, 'var/lib/apt/lists')).sort()).toEqual(expect.arrayContaining(['partial']));
    expect(readdirSync(join(root, 'var/lib/apt/lists')).filter((n) => n !== 'partial' && n !== 'lock')).toEqual([]);
    // Nothing of the build host: debootstrap copies its hostname and resolv.conf.
    expect(existsSync(join(root, 'etc/hostname'))).toBe(false);
    expect(readFileSync(join(root, 'etc/resolv.conf'), 'utf8')).toBe('');
    expect(existsSync(join(root, 'usr/bin/apt-get'))).toBe(true);
    // debootstrap's /proc and /sys mounts went away with its session.
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(root);
    // mmdebstrap (the default) leaves /dev empty: the runtime gives each container its /dev.
    expect(readdirSync(join(root, 'dev'))).toEqual([]);
  });

  it('debootstrap is still there for root (ORCHESTRATOR_DEBIAN_BOOTSTRAP=debootstrap), under a key of its own', async () => {
    const events: DebootstrapEvent[] = [];
    const r = await debootstrapSource({ suite: 'bookworm', include: [] }, { store, tool: 'debootstrap', onEvent: (e) => void (e.type !== 'debootstrap-output' && events.push(e)) });
    const mirror = await hostAptMirror('bookworm');
    const { hex } = debootstrapKey({ suite: 'bookworm', mirror: mirror!.uri, include: [], arch: hostDebianArch(), method: 'debootstrap' });
    const root = store.snapshotPath(`debootstrap-${hex}`);
    expect(r.ok && r.value.kind === 'layers' && r.value.layers).toEqual([root]);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining([expect.stringMatching(/^debootstrap-(done|cached)$/)]));
    // debootstrap makes the device nodes itself.
    expect(statSync(join(root, 'dev/null')).isCharacterDevice()).toBe(true);
    expect(existsSync(join(root, 'usr/bin/apt-get'))).toBe(true);
    expect(ourTemps(store)).toEqual([]);
  }, 20 * 60_000);

  it('a second build does not debootstrap again and runs no step but the unchanged ones from the cache', async () => {
    const mirror = await hostAptMirror('bookworm');
    const { hex } = debootstrapKey({ suite: 'bookworm', mirror: mirror!.uri, include: [], arch: hostDebianArch(), method: 'mmdebstrap' });
    const root = store.snapshotPath(`debootstrap-${hex}`);
    const inode = statSync(root).ino;
    // A sandbox export: quick, and the steps are the same whatever the format.
    const second = await build(HELLO, { store, output: join(work, 'hello-again'), format: 'sandbox' });
    expect(second.r.ok && second.r.value.steps.map((s) => `${s.label.kind}:${s.cached}`)).toEqual(['source:true', 'post:true', 'metadata:true']);
    expect(second.debootstrap).toEqual([{ type: 'debootstrap-cached', suite: 'bookworm', path: root }]);
    expect(second.events.filter((e) => e.type === 'step-started')).toEqual([]);
    expect(statSync(root).ino).toBe(inode);
    expect(ourTemps(store)).toEqual([]);
    expect(readFileSync(join(work, 'hello-again/etc/apt/sources.list'), 'utf8')).toMatch(/ bookworm main\n$/);
  });
});

describe('examples/quickstart', () => {
  it('its recipe builds with orchestrator build (built CLI), passes its %test, and the image greets', async () => {
    const env = { ...process.env, ORCHESTRATOR_CACHE: CACHE };
    const image = join(work, 'quickstart.simg');
    const b = await runCli(['build', '--quiet', image, join(REPO_ROOT, 'examples/quickstart/recipes/hello.def')], { cwd: work, env });
    expect(b.stderr).toMatch(/^debootstrap bookworm: cached\n/);
    expect(b.stderr).toContain('%test: passed');
    expect(b.code).toBe(0);
    expect(await runCli(['run', image], { cwd: work })).toEqual({ code: 0, stdout: 'Hello, world!\n', stderr: '' });
    expect(await runCli(['run', image, 'Hi there'], { cwd: work })).toEqual({ code: 0, stdout: 'Hi there\n', stderr: '' });
  }, 20 * 60_000);
});

describe('Bootstrap: debootstrap, bad inputs', () => {
  let bad: string;
  let badStore: Store;
  beforeAll(async () => {
    bad = mkdtempSync(join(tmpdir(), 'orch-debootstrap-bad-'));
    badStore = await Store.open({ dir: join(bad, 'cache') });
  });
  afterAll(() => rmSync(bad, { recursive: true, force: true }));

  const nothingLeft = () => {
    expect(readdirSync(badStore.snapshotsDir)).toEqual([]);
    expect(readdirSync(badStore.tmpDir)).toEqual([]);
  };

  it('an unknown suite fails with mmdebstrap\'s own output, the recipe line, and leaves nothing in the store', async () => {
    const { r } = await build(HELLO.replace('bookworm', 'nosuchsuite'), { store: badStore, output: join(bad, 'x.simg') });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.reason).toBe('tool-failed');
    expect(r.error.message).toMatch(/^mmdebstrap of 'nosuchsuite': mmdebstrap exited with status \d+\n/);
    expect(r.error.message).toMatch(/ nosuchsuite Release' does not have a Release file\.\n/);
    expect(r.error.message).toMatch(/\nE: mmdebstrap failed to run$/);
    expect(r.error.location).toMatchObject({ file: 'hello.def', line: 1, column: 12 });
    expect(r.error.hint).toMatch(/^the lines above are mmdebstrap's own output; check OSVersion/);
    expect(existsSync(join(bad, 'x.simg'))).toBe(false);
    nothingLeft();
  });

  it('an unreachable mirror fails with mmdebstrap\'s output and leaves nothing in the store', async () => {
    const text = HELLO.replace('OSVersion: bookworm', 'OSVersion: bookworm\nMirrorURL: http://127.0.0.1:9/debian');
    const { r } = await build(text, { store: badStore, output: join(bad, 'x.simg') });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.reason).toBe('tool-failed');
    expect(r.error.message).toMatch(/^mmdebstrap of 'bookworm': mmdebstrap exited with status \d+\n/);
    expect(r.error.message).toContain('E: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9');
    nothingLeft();
  });

  it('the user and password of a mirror URL never reach the message, the events or the log', async () => {
    const chunks: string[] = [];
    const logFile = join(bad, 'debootstrap.log');
    const r = await debootstrapSource(
      { suite: 'bookworm', mirror: 'http://someone:s3cret@127.0.0.1:9/debian', include: [] },
      { store: badStore, logFile, onEvent: (e) => chunks.push(JSON.stringify(e)) },
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.message).toContain('127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9');
    const everything = [r.error.message, r.error.hint, ...chunks, readFileSync(logFile, 'utf8')].join('\n');
    expect(everything).toContain('***@127.0.0.1:9');
    expect(everything).not.toContain('s3cret');
    expect(everything).not.toContain('someone');
    nothingLeft();
  });

  it.each([
    ['mmdebstrap', 'mmdebstrap'],
    ['debootstrap', 'debootstrap'],
  ] as const)('a missing %s says how to install it', async (tool, pkg) => {
    const stage = recipeOf(HELLO).stages[0]!;
    const r = await debootstrapSource(
      { suite: 'bookworm', mirror: 'http://127.0.0.1:9/debian', include: [], location: stage.header.get('bootstrap')!.valueLocation },
      { store: badStore, tool, searchPath: join(bad, 'no-such-bin') },
    );
    expect(r).toEqual({
      ok: false,
      error: {
        severity: 'error',
        reason: 'tool-missing',
        message: `${tool} of 'bookworm': '${tool}' is not installed`,
        hint: `install it: apt-get install ${pkg}`,
        location: expect.objectContaining({ file: 'hello.def', line: 1 }),
      },
    });
    nothingLeft();
  });

  it('in a single-id namespace a missing fakechroot says how to install it', async () => {
    const bin = join(bad, 'only-mmdebstrap');
    mkdirSync(bin, { recursive: true });
    symlinkSync('/usr/bin/mmdebstrap', join(bin, 'mmdebstrap'));
    const r = await debootstrapSource({ suite: 'bookworm', mirror: 'http://127.0.0.1:9/debian', include: [] }, { store: badStore, mapping: 'single-id', searchPath: bin });
    expect(r.ok ? 'built' : r.error).toEqual({
      severity: 'error',
      reason: 'tool-missing',
      message: "mmdebstrap of 'bookworm': 'fakechroot' is not installed",
      hint: 'install it: apt-get install fakechroot',
    });
    nothingLeft();
  });

  it('an interrupted debootstrap stops, says so, and leaves nothing in the store and no mount', async () => {
    const controller = new AbortController();
    const seen: string[] = [];
    const r = await debootstrapSource(
      { suite: 'bookworm', include: ['hello'] },
      {
        store: badStore,
        signal: controller.signal,
        onEvent: (e) => {
          seen.push(e.type);
          if (e.type === 'debootstrap-output') controller.abort();
        },
      },
    );
    expect(seen.slice(0, 2)).toEqual(['debootstrap-started', 'debootstrap-output']);
    expect(r.ok ? 'built' : r.error).toMatchObject({ reason: 'interrupted', message: "mmdebstrap of 'bookworm': interrupted" });
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(badStore.root);
    nothingLeft();
  });

  it('no MirrorURL and no apt source on the host is a clear error with a hint', async () => {
    const etc = join(bad, 'etc-apt');
    mkdirSync(join(etc, 'sources.list.d'), { recursive: true });
    writeFileSync(join(etc, 'sources.list.d/x.list'), '# nothing\ndeb-src http://mirror.example.invalid/debian bookworm main\n');
    const stage = recipeOf(HELLO).stages[0]!;
    const r = await debootstrapSource({ suite: 'bookworm', include: [], location: stage.header.get('bootstrap')!.valueLocation }, { store: badStore, etcApt: etc });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({
      reason: 'debootstrap-no-mirror',
      message: "no package mirror for 'bookworm': the recipe has no MirrorURL and the host's apt configuration has no 'deb' source",
      hint: "add 'MirrorURL: <the URL of a Debian or Ubuntu mirror>' to the recipe's header",
      location: { file: 'hello.def', line: 1, column: 12 },
    });
    nothingLeft();
  });

  it('orchestrator build prints the failure at the recipe line (built CLI)', async () => {
    const dir = join(bad, 'cli');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'bad.def'), HELLO.replace('bookworm', 'nosuchsuite'));
    const r = await runCli(['build', 'bad.simg', 'bad.def'], { cwd: dir, env: { ...process.env, ORCHESTRATOR_CACHE: join(bad, 'cache') } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.def:1:12: error: mmdebstrap of 'nosuchsuite': mmdebstrap exited with status \d+\n/);
    expect(r.stderr).toMatch(/ nosuchsuite Release' does not have a Release file\.\n/);
    expect(existsSync(join(dir, 'bad.simg'))).toBe(false);
    nothingLeft();
  });
});
