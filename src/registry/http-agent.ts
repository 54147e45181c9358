import type { Dispatcher } from 'undici';
import AgentClass from 'undici/lib/dispatcher/agent.js';
import apiRequest from 'undici/lib/api/api-request.js';

/**
 * The two parts of undici the registry client uses: a connection-pooling Agent and `request`.
 * They are loaded from undici's own modules rather than its index, which also builds fetch,
 * WebSocket, cookies, mock agents and caches: ~25 ms of every pull's start-up.
 */
export const Agent = AgentClass;

/** `undici.request(url, options)` on the given dispatcher. */
export function request(url: URL, options: Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { readonly dispatcher: Dispatcher }): Promise<Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = options;
  return apiRequest.call(dispatcher, { ...rest, origin: url.origin, path: `${url.pathname}${url.search}` });
}
