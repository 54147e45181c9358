/**
 * The remote step cache through the built CLI, with two projects and two caches as two machines,
 * and the real docker-registry between them (README, "Sharing a step cache"): machine B gets
 * machine A's %post without running it and writes the same bytes; faults (a registry that is
 * down, a corrupt blob, pushes that get 500s, missing credentials) each give one warning and a
 * correct local build, and no credential is ever printed.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Rig } from '../helpers/rig.js';

type Event = Record<string, unknown> & { type: string; step?: { kind: string }; remote?: { where: string; bytes: number }; summary?: Record<string, unknown> };
const events = (stdout: string): Event[] =>
  stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Event);
const started = (ev: Event[]) => ev.filter((e) => e.type === 'step-started').map((e) => e.step!.kind);
const remoteHits = (ev: Event[]) => ev.filter((e) => e.type === 'step-cached' && e.remote).map((e) => e.step!.kind);
const summary = (ev: Event[]) => ev.find((e) => e.type === 'run-done')!.summary!;

const MANIFEST = 'version: 1\ntargets:\n  img:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n';

let registry: TestRegistry;
let machines: Rig[] = [];
let marker: string;

/** A project with its own cache: one machine. Machine B gets A's rootfs as it is (cp -a), as a pulled source would be. */
async function machine(name: string, recipe: string, rootfsFrom?: Rig): Promise<{ rig: Rig; env: NodeJS.ProcessEnv }> {
  const rig = await Rig.create(`orchestrator-remote-${name}-`);
  machines.push(rig);
  if (rootfsFrom) execFileSync('cp', ['-a', rootfsFrom.path('rootfs'), rig.path('rootfs')]);
  else {
    mkdirSync(rig.path('rootfs'));
    makeBusyboxTree(rig.path('rootfs'));
  }
  rig.write({ 'orchestrator.yaml': MANIFEST, 'app.def': recipe });
  const env: NodeJS.ProcessEnv = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache'), DOCKER_CONFIG: rig.path('docker') };
  delete env['CI'];
  return { rig, env };
}

/** %post leaves a line in a file outside the image (the host's /dev is bound in), so the test sees every run of it. */
const recipe = (runscript: string): string => `%post\n    echo ran >> ${marker}\n    echo made-by-post > /post.txt\n%runscript\n    ${runscript}\n`;
const runs = (): number => (existsSync(marker) ? readFileSync(marker, 'utf8').split('\n').filter(Boolean).length : 0);

beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
});
beforeEach(() => {
  marker = `/dev/orch-remote-marker-${randomBytes(6).toString('hex')}`;
});
afterEach(() => {
  for (const m of machines) m.cleanup();
  machines = [];
  rmSync(marker, { force: true });
});

describe('a step cache shared between two machines', () => {
  it("machine B builds A's recipe without running %post, byte for byte; an edited %runscript reuses A's %post", async () => {
    const repo = `${registry.host}/team/cache`;
    const a = await machine('a', recipe('echo hello'));
    const built = await a.rig.spawn(['up', '--progress', 'json', '--cache-to', repo], { env: a.env });
    expect(built.stderr).toBe('');
    expect(built.code).toBe(0);
    const evA = events(built.stdout);
    expect(started(evA)).toEqual(['post', 'metadata']);
    expect(runs()).toBe(1);
    expect(summary(evA)['remoteCache']).toMatchObject({ pulled: 0, pushed: 2, pushFailed: 0, warnings: 0 });

    // The format: our artifactType, the key, its parent and the tool version, a tag from the key.
    const postKey = evA.find((e) => e.type === 'step-started' && e.step!.kind === 'post')!['key'] as string;
    const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${repo}:step-${postKey.slice(7)}`], { encoding: 'utf8' })) as {
      artifactType: string;
      annotations: Record<string, string>;
      layers: Array<{ mediaType: string }>;
    };
    expect(raw.artifactType).toBe('application/vnd.orchestrator.step.v1');
    expect(raw.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip']);
    expect(raw.annotations['org.orchestrator.step.key']).toBe(postKey);
    expect(raw.annotations['org.orchestrator.step.kind']).toBe('post');
    expect(Object.keys(raw.annotations).sort()).toEqual([
      'org.orchestrator.step.diffid',
      'org.orchestrator.step.key',
      'org.orchestrator.step.kind',
      'org.orchestrator.step.parent',
      'org.orchestrator.tool.version',
    ]);

    // B, with an empty cache and an edited %runscript: %post comes from A, only the metadata runs.
    const b = await machine('b', recipe('echo edited'), a.rig);
    const edited = await b.rig.spawn(['up', '--progress', 'json', '--cache-from', repo], { env: b.env });
    expect(edited.code).toBe(0);
    const evB1 = events(edited.stdout);
    expect(started(evB1)).toEqual(['metadata']);
    expect(remoteHits(evB1)).toEqual(['post']);
    expect((evB1.find((e) => e.type === 'step-cached' && e.remote)!.remote!.bytes)).toBeGreaterThan(0);
    expect(runs()).toBe(1);

    // B with A's recipe: nothing runs, and its image is A's, byte for byte.
    b.rig.write({ 'app.def': recipe('echo hello') });
    const same = await b.rig.spawn(['up', '--progress', 'json', '--cache-from', repo], { env: b.env });
    expect(same.code).toBe(0);
    const evB2 = events(same.stdout);
    expect(started(evB2)).toEqual([]);
    expect(remoteHits(evB2)).toEqual(['metadata']);
    expect(summary(evB2)['remoteCache']).toMatchObject({ pulled: 1, pushed: 0, warnings: 0 });
    expect(runs()).toBe(1);
    expect(Buffer.compare(readFileSync(b.rig.path('build/img.simg')), readFileSync(a.rig.path('build/img.simg')))).toBe(0);

    // Plain output says where a step came from.
    rmSync(b.rig.path('cache'), { recursive: true, force: true });
    const plain = await b.rig.spawn(['up', '--force', '--progress', 'plain', '--cache-from', repo], { env: b.env });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(new RegExp(` img: %post from remote cache ${registry.host}/team/cache \\(\\d+ B\\)\n`));
    expect(plain.stdout).toMatch(/steps from cache 2, 2 from remote cache \(/);
  });
});

describe('concurrent writers', () => {
  it('two machines pushing the same steps at once both succeed, and a third machine uses them', async () => {
    const repo = `${registry.host}/team/race`;
    const a1 = await machine('a1', recipe('echo hello'));
    const a2 = await machine('a2', recipe('echo hello'), a1.rig);
    const [r1, r2] = await Promise.all([a1.rig.spawn(['up', '--progress', 'json', '--cache-to', repo], { env: a1.env }), a2.rig.spawn(['up', '--progress', 'json', '--cache-to', repo], { env: a2.env })]);
    for (const r of [r1, r2]) {
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      expect(summary(events(r.stdout))['remoteCache']).toMatchObject({ pushed: 2, pushFailed: 0, warnings: 0 });
    }
    const b = await machine('b', recipe('echo hello'), a1.rig);
    const pulled = await b.rig.spawn(['up', '--progress', 'json', '--cache-from', repo], { env: b.env });
    expect(pulled.code).toBe(0);
    expect(started(events(pulled.stdout))).toEqual([]);
    expect(runs()).toBe(2);
  });
});

describe('the cache is an optimisation, never a failure', () => {
  let proxy: TestProxy | undefined;
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
  });

  /** Machine A fills the cache; B builds through `setup`'s proxy and must build locally, with one warning. */
  async function filledCache(repoName: string): Promise<void> {
    const a = await machine('a', recipe('echo hello'));
    const r = await a.rig.spawn(['up', '--progress', 'json', '--cache-to', `${registry.host}/${repoName}`], { env: a.env });
    expect(r.code).toBe(0);
    rmSync(marker, { force: true });
  }

  async function buildsLocally(b: { rig: Rig; env: NodeJS.ProcessEnv }, args: readonly string[]): Promise<{ stderr: string; ev: Event[] }> {
    const r = await b.rig.spawn(['up', '--progress', 'json', ...args], { env: b.env });
    expect(r.code).toBe(0);
    const ev = events(r.stdout);
    expect(started(ev)).toEqual(['post', 'metadata']);
    expect(runs()).toBe(1);
    // What the local build made, and nothing from the registry, is in the store.
    const snapshots = readdirSync(b.rig.path('cache/snapshots'));
    expect(snapshots).toHaveLength(2);
    expect(readdirSync(b.rig.path('cache/tmp')).filter((n) => !n.endsWith('-active'))).toEqual([]);
    expect(execFileSync('unsquashfs', ['-o', '31', '-cat', b.rig.path('build/img.simg'), 'post.txt'], { encoding: 'utf8' })).toBe('made-by-post\n');
    return { stderr: r.stderr, ev };
  }

  it('a registry that is down: one warning, a local build', async () => {
    const b = await machine('b', recipe('echo hello'));
    const port = await freePort();
    const { stderr, ev } = await buildsLocally(b, ['--cache-from', `127.0.0.1:${port}/team/cache`]);
    expect(stderr.match(/^warning: /gm)).toHaveLength(1);
    expect(stderr).toMatch(new RegExp(`^warning: remote cache 127\\.0\\.0\\.1:${port}/team/cache: .*connection refused.*; steps build locally$`, 'm'));
    expect(summary(ev)['remoteCache']).toMatchObject({ pulled: 0, warnings: 1 });
  });

  it('a corrupt blob: one warning, nothing of it in the store, a local build', async () => {
    await filledCache('team/corrupt');
    proxy = await startProxy(registry.url, (i) =>
      i.method === 'GET' && i.path.includes('/blobs/sha256:') ? { kind: 'transform', body: (b) => Buffer.concat([b.subarray(0, b.length - 1), Buffer.from([b[b.length - 1]! ^ 1])]) } : { kind: 'pass' },
    );
    const b = await machine('b', recipe('echo hello'));
    const { stderr } = await buildsLocally(b, ['--cache-from', `${proxy.host}/team/corrupt`]);
    expect(stderr.match(/^warning: /gm)).toHaveLength(1);
    expect(stderr).toMatch(/^warning: remote cache 127\.0\.0\.1:\d+\/team\/corrupt: .*(digest|hash).*; steps build locally$/m);
    expect(readdirSync(b.rig.path('cache/blobs/sha256'))).toEqual([]);
  });

  it('pushes that get 500s: one warning, the build succeeds and says what was not pushed', { timeout: 60_000 }, async () => {
    proxy = await startProxy(registry.url, (i) => (i.method === 'POST' ? { kind: 'status', status: 500 } : { kind: 'pass' }));
    const b = await machine('b', recipe('echo hello'));
    const { stderr, ev } = await buildsLocally(b, ['--cache-to', `${proxy.host}/team/down`]);
    expect(stderr.match(/^warning: /gm)).toHaveLength(1);
    expect(stderr).toMatch(/^warning: remote cache 127\.0\.0\.1:\d+\/team\/down: .*HTTP 500 \(after 3 attempts\); steps build locally$/m);
    expect(summary(ev)['remoteCache']).toMatchObject({ pushed: 0, warnings: 1 });
  });

  it('auth: anonymous reads of a protected cache warn; writes with credentials work; no credential is printed', async () => {
    const password = `pw-${randomBytes(8).toString('hex')}`;
    const secured = await startRegistry({ htpasswd: { user: 'ci', password } });
    try {
      const repo = `${secured.host}/team/cache`;
      const a = await machine('a', recipe('echo hello'));
      const basic = Buffer.from(`ci:${password}`).toString('base64');
      mkdirSync(a.rig.path('docker'));
      writeFileSync(a.rig.path('docker/config.json'), JSON.stringify({ auths: { [secured.host]: { auth: basic } } }));
      const pushed = await a.rig.spawn(['up', '--progress', 'json', '--cache-to', repo], { env: a.env });
      expect(pushed.code).toBe(0);
      expect(summary(events(pushed.stdout))['remoteCache']).toMatchObject({ pushed: 2, warnings: 0 });
      rmSync(marker, { force: true });

      const b = await machine('b', recipe('echo hello'), a.rig);
      const { stderr } = await buildsLocally(b, ['--cache-from', repo]);
      expect(stderr).toMatch(new RegExp(`^warning: remote cache ${secured.host.replace(/\./g, '\\.')}/team/cache: registry ${secured.host.replace(/\./g, '\\.')} requires credentials for team/cache; steps build locally$`, 'm'));
      for (const text of [pushed.stdout, pushed.stderr, stderr]) {
        expect(text).not.toContain(password);
        expect(text).not.toContain(basic);
      }
    } finally {
      await secured.stop();
    }
  });
});

describe('the manifest keys cache.remote and cache.push', () => {
  it('push: true writes every step; cache.remote alone reads and writes nothing', async () => {
    const repo = `${registry.host}/team/manifest-cache`;
    const a = await machine('a', recipe('echo hello'));
    a.rig.write({ 'orchestrator.yaml': `version: 1\ncache:\n  remote: ${repo}\n  push: true\n${MANIFEST.slice('version: 1\n'.length)}` });
    const pushed = await a.rig.spawn(['up', '--progress', 'json'], { env: a.env });
    expect(pushed.code).toBe(0);
    expect(summary(events(pushed.stdout))['remoteCache']).toMatchObject({ pulled: 0, pushed: 2 });

    const b = await machine('b', recipe('echo hello'), a.rig);
    b.rig.write({ 'orchestrator.yaml': `version: 1\ncache:\n  remote: ${repo}\n${MANIFEST.slice('version: 1\n'.length)}` });
    const pulled = await b.rig.spawn(['up', '--progress', 'json'], { env: b.env });
    expect(pulled.code).toBe(0);
    const ev = events(pulled.stdout);
    expect(started(ev)).toEqual([]);
    expect(summary(ev)['remoteCache']).toMatchObject({ pulled: 2, pushed: 0 });
    expect(runs()).toBe(1);
  });

  it('refuse a repository with a tag, and push without a remote, at their place in the manifest', async () => {
    const a = await machine('a', recipe('echo hello'));
    a.rig.write({ 'orchestrator.yaml': `version: 1\ncache:\n  remote: ${registry.host}/team/cache:v1\n${MANIFEST.slice('version: 1\n'.length)}` });
    const tagged = await a.rig.spawn(['validate'], { env: a.env });
    expect(tagged.code).toBe(2);
    expect(tagged.stderr).toContain(`orchestrator.yaml:3:11: error: cache.remote '${registry.host}/team/cache:v1' is not a registry repository (it names a tag or digest)`);
    a.rig.write({ 'orchestrator.yaml': `version: 1\ncache:\n  push: true\n${MANIFEST.slice('version: 1\n'.length)}` });
    const lonely = await a.rig.spawn(['validate'], { env: a.env });
    expect(lonely.code).toBe(2);
    expect(lonely.stderr).toContain('orchestrator.yaml:3:9: error: cache.push needs cache.remote: the repository to push steps to');
  });
});

describe('orchestrator build', () => {
  it('pushes with --cache-to and pulls with --cache-from, and says so in its last line', async () => {
    const repo = `${registry.host}/team/oneshot`;
    const oneShot = `Bootstrap: localimage\nFrom: rootfs\n\n${recipe('echo hello')}`;
    const a = await machine('a', oneShot);
    const pushed = await a.rig.spawn(['build', '-q', 'out.simg', 'app.def', '--cache-to', repo], { env: a.env });
    expect(pushed.code).toBe(0);
    expect(pushed.stderr).toMatch(/^built out\.simg \(squashfs\): 2 steps run, 0 from cache, pushed 2 to remote cache \([\d.]+ [KM]?i?B uploaded\)$/m);
    const b = await machine('b', oneShot, a.rig);
    const pulled = await b.rig.spawn(['build', '-q', 'out.simg', 'app.def', '--cache-from', repo], { env: b.env });
    expect(pulled.code).toBe(0);
    expect(pulled.stderr).toMatch(/^%post: from remote cache 127\.0\.0\.1:\d+\/team\/oneshot \(/m);
    expect(pulled.stderr).toMatch(/^built out\.simg \(squashfs\): 0 steps run, 2 from cache, 2 from remote cache \(/m);
    expect(runs()).toBe(1);
  });
});

describe('command line', () => {
  it('refuses a cache reference with a tag, before building anything', async () => {
    const a = await machine('a', recipe('echo hello'));
    const r = await a.rig.spawn(['up', '--cache-from', `${registry.host}/team/cache:v1`], { env: a.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: --cache-from '${registry.host}/team/cache:v1' names a tag or digest; a step cache is a repository`);
    expect(runs()).toBe(0);
  });
});
