import type { RegistryClient, RetryOptions } from '../registry/registry-client.js';

/**
 * A registry client with the user's credentials, loaded only when a build needs a registry: an
 * `up` with nothing to pull never loads the HTTP stack.
 */
export async function makeRegistryClient(env: NodeJS.ProcessEnv, options: { retry?: RetryOptions } = {}): Promise<RegistryClient> {
  const [{ RegistryClient: Client }, { loadCredentials }] = await Promise.all([import('../registry/registry-client.js'), import('../registry/credentials.js')]);
  return new Client({ credentials: await loadCredentials({ env }), env, ...(options.retry ? { retry: options.retry } : {}) });
}
