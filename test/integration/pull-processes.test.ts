import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/core/digest.js';
import { Store } from '../../src/store/store.js';
import { BIN, runCli } from '../helpers/cli.js';
import { pushImage, threeLayerImage, busyboxImage, type BuiltImage } from '../helpers/images.js';
import { startProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

// These run the built CLI (bin/orchestrator.js → dist/), as users and other processes do.
let registry: TestRegistry;
let busybox: BuiltImage;
let three: BuiltImage;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  registry = await startRegistry();
  busybox = await busyboxImage();
  three = await threeLayerImage();
  await pushImage(`${registry.host}/library/busybox:latest`, busybox);
  await pushImage(`${registry.host}/test/three:v1`, three);
});
afterAll(async () => {
  await registry?.stop();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orch-procs-'));
  env = { PATH: process.env['PATH'], HOME: join(dir, 'home'), ORCHESTRATOR_CACHE: join(dir, 'cache') };
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('pulls from several processes', () => {
  it('two processes pulling the same images into one cache both succeed and leave a valid store', async () => {
    const refs = [`docker://${registry.host}/library/busybox:latest`, `docker://${registry.host}/test/three:v1`];
    const results = await Promise.all([...refs, ...refs].map((r) => runCli(['pull', '-q', r], { cwd: dir, env })));
    for (const r of results) expect(r.code).toBe(0);
    expect(results.map((r) => r.stdout)).toEqual([busybox, three, busybox, three].map((i) => `${i.manifestDigest}\n`));
    const store = await Store.open({ dir: join(dir, 'cache') });
    const names = await readdir(store.blobs.dir);
    expect(names.length).toBe(2 + 1 + 2 + 3);
    for (const n of names) expect(await store.blobs.verify(`sha256:${n}` as Digest)).toBe('valid');
    expect(await readdir(store.tmpDir)).toEqual([]);
  });

  it('SIGINT mid-download exits 130, leaves no partial blob, and the next pull completes', async () => {
    const layer = busybox.layers[0]!.digest;
    const proxy = await startProxy(registry.url, (i) => (i.path.endsWith(`/blobs/${layer}`) ? { kind: 'stall-after', bytes: 200_000 } : { kind: 'pass' }));
    try {
      const child = spawn(process.execPath, [BIN, 'pull', `docker://${proxy.host}/library/busybox:latest`], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      const code = await new Promise<number | null>((resolve) => {
        child.stderr.on('data', (c: Buffer) => {
          stderr += c.toString('utf8');
          if (stderr.includes(`${layer.slice(0, 19)}: downloading`) && !child.killed) setTimeout(() => child.kill('SIGINT'), 200);
        });
        child.on('exit', (c) => resolve(c));
      });
      expect(code).toBe(130);
      expect(stderr).toContain('error: interrupted');
      const store = await Store.open({ dir: join(dir, 'cache') });
      expect(await store.blobs.has(layer)).toBe(false);
      expect(await readdir(store.tmpDir)).toEqual([]);
    } finally {
      await proxy.stop();
    }
    const again = await runCli(['pull', `docker://${registry.host}/library/busybox:latest`], { cwd: dir, env });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`${busybox.manifestDigest}\n`);
  });
});
