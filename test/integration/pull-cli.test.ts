import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCliInProcess } from '../helpers/cli.js';
import { buildImage, busyboxImage, pushImage, pushIndex, tarLayer, twoPlatformIndex, type BuiltImage, type BuiltIndex } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
let busybox: BuiltImage;
let index: BuiltIndex;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  registry = await startRegistry();
  busybox = await busyboxImage();
  index = await twoPlatformIndex();
  await pushImage(`${registry.host}/library/busybox:latest`, busybox);
  await pushIndex(`${registry.host}/test/multi:latest`, index);
});
afterAll(async () => {
  await registry?.stop();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orch-pull-cli-'));
  env = { PATH: process.env['PATH'], HOME: join(dir, 'home'), ORCHESTRATOR_CACHE: join(dir, 'cache'), NO_COLOR: '1' };
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('orchestrator pull', () => {
  it('prints the manifest digest, shows byte progress, and a second pull downloads nothing', async () => {
    const r = await runCliInProcess(['pull', `docker://${registry.host}/library/busybox:latest`], { cwd: dir, env });
    expect(r.stderr).toContain(`docker://${registry.host}/library/busybox:latest: ${busybox.manifestDigest} (linux/amd64)`);
    expect(r.stderr).toContain(`${busybox.layers[0]!.digest.slice(0, 19)}: downloading`);
    expect(r.stderr).toMatch(/pulled .*: 1 layer, .* downloaded, 0 blob\(s\) cached/);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${busybox.manifestDigest}\n`);
    const again = await runCliInProcess(['pull', `docker://${registry.host}/library/busybox:latest`], { cwd: dir, env });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`${busybox.manifestDigest}\n`);
    expect(again.stderr).toContain('0 B downloaded, 2 blob(s) cached');
    expect(again.stderr).not.toContain('downloading');
  });

  it('picks a platform with --platform', async () => {
    const r = await runCliInProcess(['pull', '--platform', 'linux/arm64', `docker://${registry.host}/test/multi`], { cwd: dir, env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${index.images[1]!.manifestDigest}\n`);
    const bad = await runCliInProcess(['pull', '--platform', 'linux', `docker://${registry.host}/test/multi`], { cwd: dir, env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("error: invalid platform 'linux'\n  hint: write it as OS/ARCH[/VARIANT], e.g. 'linux/amd64' or 'linux/arm64/v8'\n");
  });

  it('rejects a bad reference with exit 2 and writes nothing', async () => {
    const r = await runCliInProcess(['pull', 'docker://Busybox'], { cwd: dir, env });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("error: invalid image reference 'docker://Busybox': repository name component 'Busybox' must be lowercase\n  hint: try 'busybox'\n");
    expect(await readdir(dir)).toEqual([]);
  });

  it('pins the tag in orchestrator.lock inside a project and keeps the pin until --pull', async () => {
    await writeFile(join(dir, 'orchestrator.yaml'), 'version: 1\ntargets: {}\n');
    const name = `${registry.host}/test/moving:latest`;
    const v1 = buildImage([await tarLayer([{ name: 'v', content: '1\n' }])]);
    const v2 = buildImage([await tarLayer([{ name: 'v', content: '2\n' }])]);
    await pushImage(name, v1);
    const first = await runCliInProcess(['pull', `docker://${name}`], { cwd: dir, env });
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(`${v1.manifestDigest}\n`);
    expect(JSON.parse(await readFile(join(dir, 'orchestrator.lock'), 'utf8'))).toEqual({
      version: 1,
      images: { [`docker://${name}`]: { digest: v1.manifestDigest, platforms: { 'linux/amd64': v1.manifestDigest } } },
    });
    await pushImage(name, v2);
    const pinned = await runCliInProcess(['pull', `docker://${name}`], { cwd: dir, env });
    expect(pinned.stdout).toBe(`${v1.manifestDigest}\n`);
    expect(pinned.stderr).toContain('[cached]');
    const repulled = await runCliInProcess(['pull', '--pull', `docker://${name}`], { cwd: dir, env });
    expect(repulled.stdout).toBe(`${v2.manifestDigest}\n`);
    const lock = JSON.parse(await readFile(join(dir, 'orchestrator.lock'), 'utf8')) as { images: Record<string, { digest: string }> };
    expect(lock.images[`docker://${name}`]!.digest).toBe(v2.manifestDigest);
    // -C finds the same project from elsewhere.
    const fromOutside = await runCliInProcess(['pull', '-C', dir, `docker://${name}`], { cwd: tmpdir(), env });
    expect(fromOutside.stdout).toBe(`${v2.manifestDigest}\n`);
  });

  it('records the index digest and per-platform manifests for a multi-platform tag', async () => {
    await writeFile(join(dir, 'orchestrator.yaml'), 'version: 1\n');
    await runCliInProcess(['pull', `docker://${registry.host}/test/multi`], { cwd: dir, env });
    await runCliInProcess(['pull', '--platform', 'linux/arm64/v8', `docker://${registry.host}/test/multi`], { cwd: dir, env });
    expect(await readFile(join(dir, 'orchestrator.lock'), 'utf8')).toBe(
      JSON.stringify(
        {
          version: 1,
          images: {
            [`docker://${registry.host}/test/multi:latest`]: {
              digest: index.digest,
              platforms: { 'linux/amd64': index.images[0]!.manifestDigest, 'linux/arm64/v8': index.images[1]!.manifestDigest },
            },
          },
        },
        null,
        2,
      ) + '\n',
    );
  });
});

describe('orchestrator cache', () => {
  it('lists blobs and sums sizes, as text and JSON', async () => {
    await runCliInProcess(['pull', '-q', `docker://${registry.host}/library/busybox`], { cwd: dir, env });
    const ls = await runCliInProcess(['cache', 'ls'], { cwd: dir, env });
    expect(ls.code).toBe(0);
    expect(ls.stdout.split('\n')[0]).toMatch(/^KIND +ID +SIZE +MODIFIED$/);
    expect(ls.stdout).toContain(`blob  ${busybox.layers[0]!.digest}`);
    const lsJson = JSON.parse((await runCliInProcess(['cache', 'ls', '--json'], { cwd: dir, env })).stdout) as { entries: { id: string; bytes: number }[] };
    expect(lsJson.entries.find((e) => e.id === busybox.layers[0]!.digest)?.bytes).toBe(busybox.layers[0]!.size);
    const du = JSON.parse((await runCliInProcess(['cache', 'du', '--json'], { cwd: dir, env })).stdout) as { root: string; kinds: { blob: { count: number; bytes: number } } };
    expect(du.root).toBe(join(dir, 'cache'));
    expect(du.kinds.blob).toEqual({ count: 3, bytes: busybox.layers[0]!.size + busybox.config.length + busybox.manifest.length });
    const text = await runCliInProcess(['cache', 'du'], { cwd: dir, env });
    expect(text.stdout).toMatch(/^ {2}blobs +3 +\d/m);
    const bad = await runCliInProcess(['cache', 'lss'], { cwd: dir, env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("error: unknown 'cache' subcommand 'lss'\n  hint: did you mean 'ls'?\n");
  });
});
