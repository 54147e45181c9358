import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/core/digest.js';
import { formatLock, readLockFile, withLockEntry, writeLockFile } from '../../src/lock/lock-file.js';
import { parseAuthChallenge } from '../../src/registry/auth-challenge.js';
import { credentialsFromConfig, loadCredentials } from '../../src/registry/credentials.js';
import { MEDIA_TYPES, parseManifest } from '../../src/registry/media-types.js';
import { parsePlatform, selectPlatform } from '../../src/registry/platform.js';
import { RegistryClient } from '../../src/registry/registry-client.js';
import { formatBytes } from '../../src/report/format-bytes.js';

const D1 = sha256Digest('1');
const D2 = sha256Digest('2');

describe('parseAuthChallenge', () => {
  it('reads Bearer parameters, including commas inside quotes', () => {
    expect(parseAuthChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
    });
    expect(parseAuthChallenge('Basic realm="x"')).toEqual({ scheme: 'basic', params: { realm: 'x' } });
    expect(parseAuthChallenge(['Negotiate', 'basic realm=y'])).toEqual({ scheme: 'basic', params: { realm: 'y' } });
    expect(parseAuthChallenge(undefined)).toBeUndefined();
  });
});

describe('credentials', () => {
  it('reads the auths map: auth base64, username/password, identitytoken, URL keys, Docker Hub aliases', async () => {
    const c = credentialsFromConfig({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw:with:colons').toString('base64') },
        'reg.example:5000': { username: 'u', password: 'p' },
        'tok.example': { identitytoken: 'it' },
        'bad.example': { auth: '!!!' },
      },
    });
    expect(c.lookup('docker.io')).toEqual({ kind: 'basic', username: 'hub', password: 'pw:with:colons' });
    expect(c.lookup('reg.example:5000')).toEqual({ kind: 'basic', username: 'u', password: 'p' });
    expect(c.lookup('tok.example')).toEqual({ kind: 'identity-token', token: 'it' });
    expect(c.lookup('bad.example')).toBeUndefined();
    expect(c.lookup('other')).toBeUndefined();
    const dir = await mkdtemp(join(tmpdir(), 'orch-cred-'));
    try {
      await writeFile(join(dir, 'a.json'), JSON.stringify({ auths: { h: { auth: Buffer.from('x:y').toString('base64') } } }));
      expect((await loadCredentials({ env: { REGISTRY_AUTH_FILE: join(dir, 'a.json') } })).lookup('h')).toEqual({ kind: 'basic', username: 'x', password: 'y' });
      expect((await loadCredentials({ env: { HOME: dir } })).lookup('h')).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('platforms', () => {
  it('parses and selects, treating arm64 without a variant as v8', () => {
    expect(parsePlatform('linux/arm/v7')).toEqual({ ok: true, value: { os: 'linux', architecture: 'arm', variant: 'v7' } });
    expect(parsePlatform('linux/AMD64').ok).toBe(false);
    const ms = [
      { mediaType: MEDIA_TYPES.ociManifest, digest: D1, size: 1, platform: { os: 'linux', architecture: 'arm64' } },
      { mediaType: MEDIA_TYPES.ociManifest, digest: D2, size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    ];
    expect(selectPlatform(ms, { os: 'linux', architecture: 'arm64', variant: 'v8' }, 'x')).toMatchObject({ ok: true, value: { digest: D1 } });
    expect(selectPlatform(ms, { os: 'linux', architecture: 'arm' }, 'x')).toMatchObject({ ok: true, value: { digest: D2 } });
    const miss = selectPlatform(ms, { os: 'linux', architecture: 'arm', variant: 'v6' }, 'docker://r/x:1');
    expect(miss).toMatchObject({
      ok: false,
      error: { reason: 'platform-not-found', message: 'docker://r/x:1 has no image for platform linux/arm/v6', hint: 'available: linux/arm64, linux/arm/v7; choose one with --platform' },
    });
  });
});

describe('parseManifest', () => {
  it('accepts OCI and Docker schema 2, rejects schema 1 and junk with reasons', () => {
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifest, config: { mediaType: MEDIA_TYPES.dockerConfig, digest: D1, size: 3 }, layers: [] }));
    expect(parseManifest(m, undefined, 'x')).toMatchObject({ ok: true, value: { kind: 'manifest', mediaType: MEDIA_TYPES.dockerManifest } });
    const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
    expect(parseManifest(idx, `${MEDIA_TYPES.dockerList}; charset=utf-8`, 'x')).toMatchObject({ ok: true, value: { kind: 'index' } });
    expect(parseManifest(Buffer.from('{"schemaVersion":1}'), MEDIA_TYPES.dockerSchema1Signed, 'img')).toMatchObject({
      ok: false,
      error: { reason: 'unsupported-manifest', message: 'img: Docker schema 1 manifests are not supported' },
    });
    expect(parseManifest(Buffer.from('nope'), undefined, 'img')).toMatchObject({ ok: false, error: { reason: 'bad-manifest', message: 'img: it is not valid JSON' } });
    const badLayer = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'c', digest: D1, size: 1 }, layers: [{ mediaType: 'l', digest: 'md5:x', size: 1 }] }));
    expect(parseManifest(badLayer, undefined, 'img')).toMatchObject({ ok: false, error: { message: 'img: layers[0].digest is not a sha256 digest' } });
  });
});

describe('RegistryClient.schemeFor', () => {
  it('uses http only for loopback and listed insecure hosts', () => {
    const c = new RegistryClient({ env: { ORCHESTRATOR_INSECURE_REGISTRIES: 'a.local:5000, b.local' }, insecureRegistries: ['c.local'] });
    expect(c.schemeFor('127.0.0.1:5000')).toBe('http');
    expect(c.schemeFor('localhost')).toBe('http');
    expect(c.schemeFor('[::1]:5000')).toBe('http');
    expect(c.schemeFor('a.local:5000')).toBe('http');
    expect(c.schemeFor('b.local:443')).toBe('http');
    expect(c.schemeFor('c.local')).toBe('http');
    expect(c.schemeFor('registry-1.docker.io')).toBe('https');
    expect(c.schemeFor('10.0.0.1:5000')).toBe('https');
    void c.close();
  });
});

describe('lock file', () => {
  it('round-trips, merges platforms, and reports bad files with a hint', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'orch-lock-'));
    try {
      const path = join(dir, 'orchestrator.lock');
      expect(await readLockFile(path)).toEqual({ ok: true, value: { version: 1, images: {} } });
      let lock = withLockEntry({ version: 1, images: {} }, 'docker://r/b:1', D1, 'linux/amd64', D2);
      lock = withLockEntry(lock, 'docker://r/b:1', D1, 'linux/arm64', D1);
      lock = withLockEntry(lock, 'docker://r/a:1', D2, 'linux/amd64', D2);
      await writeLockFile(path, lock);
      expect(Object.keys(JSON.parse(await readFile(path, 'utf8')).images)).toEqual(['docker://r/a:1', 'docker://r/b:1']);
      expect(await readLockFile(path)).toEqual({ ok: true, value: JSON.parse(formatLock(lock)) });
      // A moved tag drops the old platform pins.
      expect(withLockEntry(lock, 'docker://r/b:1', D2, 'linux/amd64', D2).images['docker://r/b:1']).toEqual({ digest: D2, platforms: { 'linux/amd64': D2 } });
      await writeFile(path, '{"version":1,"images":{"x":{"digest":"nope"}}}');
      expect(await readLockFile(path)).toMatchObject({
        ok: false,
        error: { reason: 'bad-lock-file', message: `${path}: images["x"].digest is not a sha256 digest` },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect([0, 1023, 1024, 1536, 10 * 1024 * 1024, 150 * 1024 ** 3].map(formatBytes)).toEqual(['0 B', '1023 B', '1.00 KiB', '1.50 KiB', '10.0 MiB', '150 GiB']);
  });
});
