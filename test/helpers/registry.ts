import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { test } from 'vitest';
import { makeBusyboxTree } from './busybox-image.js';
import { Rig } from './rig.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  readonly host: string;
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** The storage folder (rootdirectory). */
  readonly storage: string;
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  /** Protect the registry with htpasswd Basic auth. */
  readonly htpasswd?: { readonly user: string; readonly password: string };
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForV2(url: string, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}:\n${log()}`);
    try {
      const r = await request(`${url}/v2/`);
      await r.body.dump();
      if (r.statusCode === 200 || r.statusCode === 401) return;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`docker-registry did not answer on ${url}/v2/:\n${log()}`);
}

/**
 * Starts Debian's docker-registry (distribution v2) on 127.0.0.1 and a free port, storage in a
 * temp folder, optionally behind htpasswd. `stop()` kills it and removes the folder.
 */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'orch-registry-'));
  const storage = join(dir, 'storage');
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (options.htpasswd) {
    const line = execFileSync('htpasswd', ['-Bbn', options.htpasswd.user, options.htpasswd.password], { encoding: 'utf8' }).trim();
    await writeFile(join(dir, 'htpasswd'), line + '\n');
    lines.push('auth:', '  htpasswd:', '    realm: orchestrator-test', `    path: ${join(dir, 'htpasswd')}`);
  }
  const config = join(dir, 'config.yml');
  await writeFile(config, lines.join('\n') + '\n');
  const child = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForV2(url, child, () => stderr);
  } catch (e) {
    await stop();
    throw e;
  }
  return { host: `127.0.0.1:${port}`, port, url, storage, stop };
}

/**
 * The `it` of a test file that drives the CLI against the real registry. Each test may ask for:
 * - `registry`: one docker-registry for the whole file, started when a test first asks for it;
 * - `rig`: a fresh project (temp folder `prefix*`) with a busybox tree at `rootfs/`, removed after;
 * - `env`: the CLI's environment for that project: its own cache and Docker config (no login of
 *   the host's), `CI` unset (plain output is asked for by the test), and `extraEnv`.
 */
export function registryTest(prefix: string, extraEnv: NodeJS.ProcessEnv = {}) {
  // vitest reads what a fixture needs from its first parameter, which must be a pattern: `{}`, nothing.
  return test
    // eslint-disable-next-line no-empty-pattern
    .extend('registry', { scope: 'file' }, async ({}, { onCleanup }) => {
      const registry = await startRegistry();
      onCleanup(() => registry.stop());
      return registry;
    })
    // eslint-disable-next-line no-empty-pattern
    .extend('rig', async ({}, { onCleanup }) => {
      const rig = await Rig.create(prefix);
      onCleanup(() => rig.cleanup());
      mkdirSync(rig.path('rootfs'));
      makeBusyboxTree(rig.path('rootfs'));
      return rig;
    })
    .extend('env', ({ rig }) => {
      const env: NodeJS.ProcessEnv = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache'), DOCKER_CONFIG: rig.path('docker'), ...extraEnv };
      delete env['CI'];
      return env;
    });
}
