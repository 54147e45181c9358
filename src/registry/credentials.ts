import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Credentials for one registry. Never put any of this in an error, an event or a log. */
export type Credential = { readonly kind: 'basic'; readonly username: string; readonly password: string } | { readonly kind: 'identity-token'; readonly token: string };

export interface CredentialSource {
  /** The credential for a registry host (`127.0.0.1:5000`, `docker.io`), if any. */
  lookup(host: string): Credential | undefined;
}

function hostOfKey(key: string): string {
  let k = key.replace(/^[a-z]+:\/\//, '');
  k = k.split('/')[0] ?? k;
  return k;
}

const HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** Parses the `auths` map of a Docker config.json / containers auth.json. Bad entries are skipped. */
export function credentialsFromConfig(json: unknown): CredentialSource {
  const map = new Map<string, Credential>();
  const auths = (json as { auths?: unknown } | null)?.auths;
  if (auths && typeof auths === 'object') {
    for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
      if (!value || typeof value !== 'object') continue;
      const v = value as Record<string, unknown>;
      let cred: Credential | undefined;
      if (typeof v['identitytoken'] === 'string' && v['identitytoken'] !== '') cred = { kind: 'identity-token', token: v['identitytoken'] };
      else if (typeof v['auth'] === 'string' && v['auth'] !== '') {
        const decoded = Buffer.from(v['auth'], 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon > 0) cred = { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
      } else if (typeof v['username'] === 'string' && typeof v['password'] === 'string') {
        cred = { kind: 'basic', username: v['username'], password: v['password'] };
      }
      if (cred) map.set(hostOfKey(key), cred);
    }
  }
  return {
    lookup(host) {
      const direct = map.get(host);
      if (direct) return direct;
      if (HUB.has(host)) for (const h of HUB) if (map.has(h)) return map.get(h);
      return undefined;
    },
  };
}

/**
 * Credentials from `$REGISTRY_AUTH_FILE` if set, else `~/.docker/config.json` (`$DOCKER_CONFIG/config.json`).
 * A missing or unreadable file means no credentials.
 */
export async function loadCredentials(options: { env?: NodeJS.ProcessEnv; file?: string } = {}): Promise<CredentialSource> {
  const env = options.env ?? process.env;
  const file =
    options.file ??
    (env['REGISTRY_AUTH_FILE'] ||
      join(env['DOCKER_CONFIG'] || join(env['HOME'] || homedir(), '.docker'), 'config.json'));
  try {
    return credentialsFromConfig(JSON.parse(await readFile(file, 'utf8')));
  } catch {
    return credentialsFromConfig({});
  }
}
