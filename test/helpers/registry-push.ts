/**
 * Pushes to the test registry (test/helpers/registry.ts) over plain HTTP: what the tests need to
 * put images there. Deliberately independent of src/registry's own upload path (pushBlob,
 * pushImage), so that pull tests do not depend on the code that push tests check. Basic auth
 * only, as the test registry's htpasswd mode asks for.
 */
import { request } from 'undici';
import { sha256Digest, type Digest } from '../../src/core/digest.js';
import type { ImageReference } from '../../src/registry/reference.js';

export interface PushOptions {
  /** `user:password`, for a registry started with `htpasswd`. */
  readonly basicAuth?: string;
}

async function call(url: string, method: 'HEAD' | 'POST' | 'PUT', expect: readonly number[], options: PushOptions, extra: { headers?: Record<string, string>; body?: Uint8Array } = {}) {
  const headers: Record<string, string> = { ...extra.headers };
  if (options.basicAuth !== undefined) headers['authorization'] = `Basic ${Buffer.from(options.basicAuth).toString('base64')}`;
  const res = await request(url, { method, headers, ...(extra.body ? { body: extra.body } : {}) });
  const text = await res.body.text();
  if (!expect.includes(res.statusCode)) throw new Error(`${method} ${url}: HTTP ${res.statusCode} ${text}`);
  return res;
}

const base = (ref: ImageReference): string => `http://${ref.apiHost}/v2/${ref.repository}`;

/** Uploads a blob (monolithic POST + PUT) unless the registry has it. Returns its digest. */
export async function pushBlob(ref: ImageReference, bytes: Uint8Array, options: PushOptions = {}): Promise<Digest> {
  const digest = sha256Digest(bytes);
  const head = await call(`${base(ref)}/blobs/${digest}`, 'HEAD', [200, 404], options);
  if (head.statusCode === 200) return digest;
  const started = await call(`${base(ref)}/blobs/uploads/`, 'POST', [202], options);
  const location = started.headers['location'];
  if (typeof location !== 'string') throw new Error(`${ref.registry} started an upload without a Location`);
  const url = new URL(location, `http://${ref.apiHost}`);
  url.searchParams.set('digest', digest);
  await call(url.toString(), 'PUT', [201], options, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) }, body: bytes });
  return digest;
}

/** Puts a manifest under the reference's tag (or its digest). Returns the manifest digest. */
export async function pushManifest(ref: ImageReference, bytes: Uint8Array, mediaType: string, options: PushOptions = {}): Promise<Digest> {
  const digest = sha256Digest(bytes);
  await call(`${base(ref)}/manifests/${ref.tag ?? digest}`, 'PUT', [200, 201], options, { headers: { 'content-type': mediaType }, body: bytes });
  return digest;
}
