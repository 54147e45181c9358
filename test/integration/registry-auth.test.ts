import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { credentialsFromConfig } from '../../src/registry/credentials.js';
import { pullImage } from '../../src/registry/pull-image.js';
import { parseReference, type ImageReference } from '../../src/registry/reference.js';
import type { RegistryEvent } from '../../src/registry/registry-events.js';
import { Store } from '../../src/store/store.js';
import { runCliInProcess } from '../helpers/cli.js';
import { pushImage, threeLayerImage, type BuiltImage } from '../helpers/images.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const USER = 'alice';
const PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

function ref(text: string): ImageReference {
  const r = parseReference(text);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orch-auth-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function expectNoSecrets(texts: readonly string[], secrets: readonly string[]): void {
  for (const t of texts) for (const s of secrets) expect(t).not.toContain(s);
}

describe('Basic auth (htpasswd on the real registry)', () => {
  let registry: TestRegistry;
  let image: BuiltImage;
  beforeAll(async () => {
    registry = await startRegistry({ htpasswd: { user: USER, password: PASSWORD } });
    image = await threeLayerImage();
    await pushImage(`${registry.host}/private/three:v1`, image, { basicAuth: `${USER}:${PASSWORD}` });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('asks for credentials when there are none', async () => {
    const store = await Store.open({ dir: join(dir, 'cache') });
    const r = await pullImage(ref(`${registry.host}/private/three:v1`), { store });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.reason).toBe('auth-required');
      expect(r.error.message).toBe(`registry ${registry.host} requires credentials for private/three`);
      expect(r.error.hint).toBe(
        `log in (docker login ${registry.host}, or skopeo login), or add an entry for ${registry.host} to ~/.docker/config.json or $REGISTRY_AUTH_FILE`,
      );
    }
  });

  it('says the credentials were rejected, without showing them', async () => {
    const store = await Store.open({ dir: join(dir, 'cache') });
    const wrong = `wrong-${PASSWORD}`;
    const events: RegistryEvent[] = [];
    const r = await pullImage(ref(`${registry.host}/private/three:v1`), {
      store,
      clientOptions: { credentials: credentialsFromConfig({ auths: { [registry.host]: { auth: Buffer.from(`${USER}:${wrong}`).toString('base64') } } }) },
      onEvent: (e) => events.push(e),
    });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.reason).toBe('auth-failed');
      expect(r.error.message).toBe(`registry ${registry.host} rejected the credentials for private/three`);
      expectNoSecrets([JSON.stringify(r.error), JSON.stringify(events)], [wrong, PASSWORD, Buffer.from(`${USER}:${wrong}`).toString('base64')]);
    }
  });

  it('pulls with credentials from REGISTRY_AUTH_FILE and from ~/.docker/config.json, printing no secret', async () => {
    const authFile = join(dir, 'auth.json');
    await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth: BASIC } } }));
    const env = { PATH: process.env['PATH'], HOME: join(dir, 'home'), ORCHESTRATOR_CACHE: join(dir, 'cache'), REGISTRY_AUTH_FILE: authFile };
    const r = await runCliInProcess(['pull', `docker://${registry.host}/private/three:v1`], { cwd: dir, env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${image.manifestDigest}\n`);
    expectNoSecrets([r.stdout, r.stderr], [PASSWORD, BASIC]);

    await mkdir(join(dir, 'home', '.docker'), { recursive: true });
    await writeFile(join(dir, 'home', '.docker', 'config.json'), JSON.stringify({ auths: { [`http://${registry.host}`]: { auth: BASIC } } }));
    const env2 = { PATH: process.env['PATH'], HOME: join(dir, 'home'), ORCHESTRATOR_CACHE: join(dir, 'cache2') };
    const r2 = await runCliInProcess(['pull', `docker://${registry.host}/private/three:v1`], { cwd: dir, env: env2 });
    expect(r2.code).toBe(0);
    const bad = await runCliInProcess(['pull', `docker://${registry.host}/private/three:v1`], {
      cwd: dir,
      env: { ...env2, REGISTRY_AUTH_FILE: join(dir, 'none.json'), HOME: join(dir, 'nohome'), ORCHESTRATOR_CACHE: join(dir, 'cache3') },
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`error: registry ${registry.host} requires credentials for private/three`);
  });
});

describe('Bearer tokens (a token server and an auth-checking proxy in front of the real registry)', () => {
  let registry: TestRegistry;
  let proxy: TestProxy;
  let image: BuiltImage;
  const issued = new Set<string>();
  let tokenRequests = 0;
  const scopes: string[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    image = await threeLayerImage();
    await pushImage(`${registry.host}/team/three:v1`, image);
    proxy = await startProxy(registry.url, (i) => {
      if (i.path === '/token') {
        return {
          kind: 'respond',
          handle: (req, res) => {
            tokenRequests++;
            const u = new URL(req.url ?? '/', 'http://x');
            scopes.push(u.searchParams.get('scope') ?? '');
            if (req.headers['authorization'] !== `Basic ${BASIC}`) {
              res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
              return;
            }
            const token = `tok-${randomBytes(12).toString('hex')}`;
            issued.add(token);
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
          },
        };
      }
      const auth = i.headers['authorization'];
      if (typeof auth === 'string' && auth.startsWith('Bearer ') && issued.has(auth.slice(7))) return { kind: 'pass' };
      const repo = /^\/v2\/(.+)\/(?:manifests|blobs)\//.exec(i.path)?.[1];
      return {
        kind: 'status',
        status: 401,
        headers: {
          'www-authenticate': `Bearer realm="http://${proxyHost()}/token",service="test-registry"${repo ? `,scope="repository:${repo}:pull"` : ''}`,
        },
        body: '{"errors":[{"code":"UNAUTHORIZED"}]}',
      };
    });
  });
  const proxyHost = (): string => proxy.host;
  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  it('gets one token per scope and reuses it for every blob', async () => {
    const store = await Store.open({ dir: join(dir, 'cache') });
    tokenRequests = 0;
    const events: RegistryEvent[] = [];
    const r = await pullImage(ref(`${proxy.host}/team/three:v1`), {
      store,
      clientOptions: { credentials: credentialsFromConfig({ auths: { [proxy.host]: { auth: BASIC } } }) },
      onEvent: (e) => events.push(e),
    });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.digest).toBe(image.manifestDigest);
    expect(tokenRequests).toBe(1);
    expect(scopes.at(-1)).toBe('repository:team/three:pull');
    expectNoSecrets([JSON.stringify(events)], [PASSWORD, BASIC, ...issued]);
  });

  it('fails with auth-failed when the token server refuses, naming no secret', async () => {
    const store = await Store.open({ dir: join(dir, 'cache') });
    const wrong = Buffer.from(`${USER}:nope-${PASSWORD}`).toString('base64');
    const r = await pullImage(ref(`${proxy.host}/team/three:v1`), { store, clientOptions: { credentials: credentialsFromConfig({ auths: { [proxy.host]: { auth: wrong } } }) } });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.reason).toBe('auth-failed');
      expect(r.error.message).toBe(`registry ${proxy.host} rejected the credentials for team/three`);
      expectNoSecrets([JSON.stringify(r.error)], [PASSWORD, wrong, BASIC]);
    }
  });

  it('the CLI pulls through the token server and prints no secret', async () => {
    const authFile = join(dir, 'auth.json');
    await writeFile(authFile, JSON.stringify({ auths: { [proxy.host]: { auth: BASIC } } }));
    const r = await runCliInProcess(['pull', `docker://${proxy.host}/team/three:v1`], {
      cwd: dir,
      env: { PATH: process.env['PATH'], HOME: join(dir, 'home'), ORCHESTRATOR_CACHE: join(dir, 'cache'), REGISTRY_AUTH_FILE: authFile },
    });
    expect(r.code).toBe(0);
    expectNoSecrets([r.stdout, r.stderr], [PASSWORD, BASIC, ...issued]);
  });
});
