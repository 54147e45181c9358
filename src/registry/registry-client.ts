import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';
import { Agent, request } from './http-agent.js';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { DiagnosticError } from '../core/diagnostic-error.js';
import { sha256Digest, shortDigest, type Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';
import type { BlobInfo } from '../store/blob-store.js';
import type { Store } from '../store/store.js';
import { parseAuthChallenge, type AuthChallenge } from './auth-challenge.js';
import { credentialsFromConfig, type CredentialSource } from './credentials.js';
import { MANIFEST_ACCEPT, parseManifest, type Descriptor, type ImageIndex, type ImageManifest, type ParsedManifest, type Platform } from './media-types.js';
import { DEFAULT_PLATFORM, formatPlatform, selectPlatform } from './platform.js';
import { formatReference, manifestReference, withDigest, type ImageReference } from './reference.js';
import type { RegistryEvent, RegistryEventListener } from './registry-events.js';

export interface RetryOptions {
  /** Attempts per request (or per stretch of a download without progress). Default 5. */
  readonly attempts?: number;
  /** First backoff delay; doubled each attempt, with jitter. Default 500 ms (tests use a few ms). */
  readonly baseMs?: number;
  /** Longest backoff delay. Default 20 s. */
  readonly maxMs?: number;
  /** Longest `Retry-After` honoured. Default 60 s. */
  readonly maxRetryAfterMs?: number;
}

export interface RegistryClientOptions {
  /** Credentials by registry host (see `loadCredentials`); default none (anonymous). */
  readonly credentials?: CredentialSource;
  /** Hosts (`host[:port]`) spoken to over plain http besides loopback ones. */
  readonly insecureRegistries?: readonly string[];
  /** Read for `ORCHESTRATOR_INSECURE_REGISTRIES` (comma list); default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  readonly retry?: RetryOptions;
  readonly onEvent?: RegistryEventListener;
  /** Concurrent connections per origin. Default 8. */
  readonly connections?: number;
}

export interface RequestOptions {
  readonly signal?: AbortSignal | undefined;
}

/** A manifest as served, verified against its digest. */
export interface FetchedManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly bytes: Uint8Array;
  readonly manifest: ParsedManifest;
  /** True when read from the store instead of the registry. */
  readonly cached: boolean;
}

/** The image manifest for one platform, and the index it was chosen from (if any). */
export interface ResolvedManifest {
  /** The reference pinned to the image manifest's digest. */
  readonly reference: ImageReference;
  readonly digest: Digest;
  readonly mediaType: string;
  readonly bytes: Uint8Array;
  readonly manifest: ImageManifest;
  readonly platform: Platform;
  readonly index?: { readonly digest: Digest; readonly mediaType: string; readonly bytes: Uint8Array; readonly index: ImageIndex };
  readonly cached: boolean;
}

export interface FetchManifestOptions extends RequestOptions {
  /** Platform chosen from an index; default linux/amd64. */
  readonly platform?: Platform | undefined;
  /** Read digest-pinned manifests from, and save fetched ones into, this store. */
  readonly store?: Store | undefined;
}

export interface FetchBlobOptions extends RequestOptions {
  readonly store: Store;
}

/**
 * Bytes to upload, with the digest and size they must have: in memory, or a file (read again from
 * the right offset when a transfer is retried). Checked before anything is sent.
 */
export type BlobSource =
  | { readonly digest: Digest; readonly size: number; readonly bytes: Uint8Array }
  | { readonly digest: Digest; readonly size: number; readonly path: string };

export interface PushBlobOptions extends RequestOptions {
  /**
   * Repositories of the same registry that may hold the blob: each is tried as a cross-repository
   * mount (`POST ...?mount=DIGEST&from=REPO`) before anything is uploaded.
   */
  readonly mountFrom?: readonly string[] | undefined;
  /** Upload in `PATCH` chunks of this many bytes; default (or 0): one monolithic `PUT`. */
  readonly chunkSize?: number | undefined;
  /** Bytes the registry has acknowledged so far (monotonic per attempt; restarts go back). */
  readonly onProgress?: ((bytes: number, total: number) => void) | undefined;
}

/** How a blob came to be on the registry: there already (HEAD), mounted, or uploaded. */
export type BlobPushMethod = 'exists' | 'mounted' | 'uploaded';

export interface PushedBlob {
  readonly digest: Digest;
  readonly size: number;
  readonly how: BlobPushMethod;
  /** Bytes sent over the network for this blob (0 unless uploaded; retries count again). */
  readonly bytesSent: number;
}

export interface PushManifestOptions extends RequestOptions {
  /** The manifest's media type (its `Content-Type`). */
  readonly mediaType: string;
}

type Scope = 'pull' | 'pull,push';

/** What a request's token must allow: `scope` on the reference's repository, and pull on `from`. */
interface Access {
  readonly scope: Scope;
  /** A repository a blob is mounted from. */
  readonly from?: string | undefined;
}

type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH';

/** A request body: bytes, or a stream made anew for each attempt (and each redirect or auth round). */
type Body = Uint8Array | (() => Readable);

interface Response {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Dispatcher.ResponseData['body'];
  readonly url: string;
}

class RetryableStatus extends Error {
  constructor(
    readonly status: number,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${status}`);
  }
}

class TruncatedTransfer extends Error {
  constructor() {
    super('transfer ended early');
  }
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

function errorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isRetryable(e: unknown): boolean {
  if (e instanceof RetryableStatus || e instanceof TruncatedTransfer) return true;
  const code = errorCode(e);
  return code !== undefined && RETRYABLE_CODES.has(code);
}

function describeFailure(e: unknown): string {
  if (e instanceof RetryableStatus) return e.message;
  if (e instanceof TruncatedTransfer) return 'connection closed before the end of the transfer';
  const code = errorCode(e);
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') return `connection reset (${code})`;
  if (code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED)';
  if (code !== undefined) return code;
  return e instanceof Error ? e.message : String(e);
}

function header(res: Response, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

function isLoopback(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/**
 * A client of the OCI distribution API over undici. Anonymous, Basic and Bearer-token auth (tokens
 * cached per scope until they expire), retries with exponential backoff on 5xx, 429 (honouring
 * Retry-After) and connection resets, resumable verified blob downloads into a Store, one download
 * per digest however many callers ask at once, and push (HEAD checks, cross-repository mounts,
 * monolithic and chunked uploads, manifests of any media type). Credentials are only ever put
 * into request headers; errors and events name hosts, repositories and paths, nothing more.
 */
export class RegistryClient {
  readonly #credentials: CredentialSource;
  readonly #insecure: Set<string>;
  readonly #retry: Required<RetryOptions>;
  readonly #listeners = new Set<RegistryEventListener>();
  readonly #agent: UndiciAgent;
  /** `host scope` → token and expiry (ms since epoch). */
  readonly #tokens = new Map<string, { token: string; expires: number }>();
  /** Hosts that answered with a Basic challenge. */
  readonly #basicHosts = new Set<string>();
  /** `storeRoot\0digest` → the download in flight. */
  readonly #inflight = new Map<string, Promise<Result<BlobInfo>>>();

  constructor(options: RegistryClientOptions = {}) {
    this.#credentials = options.credentials ?? credentialsFromConfig({});
    const env = options.env ?? process.env;
    const fromEnv = (env['ORCHESTRATOR_INSECURE_REGISTRIES'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    this.#insecure = new Set([...(options.insecureRegistries ?? []), ...fromEnv]);
    this.#retry = { attempts: 5, baseMs: 500, maxMs: 20_000, maxRetryAfterMs: 60_000, ...options.retry };
    if (options.onEvent) this.#listeners.add(options.onEvent);
    this.#agent = new Agent({ connections: options.connections ?? 8, keepAliveTimeout: 10_000 });
  }

  /** Adds an event listener; returns the function that removes it. */
  subscribe(listener: RegistryEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Closes idle connections. */
  async close(): Promise<void> {
    await this.#agent.close();
  }

  #emit(event: RegistryEvent): void {
    for (const l of this.#listeners) l(event);
  }

  /** `http` for loopback hosts and hosts listed as insecure, else `https`. */
  schemeFor(host: string): 'http' | 'https' {
    if (isLoopback(host)) return 'http';
    const bare = host.replace(/:\d+$/, '');
    return this.#insecure.has(host) || this.#insecure.has(bare) ? 'http' : 'https';
  }

  #base(ref: ImageReference): string {
    return `${this.schemeFor(ref.apiHost)}://${ref.apiHost}`;
  }

  // ---- auth --------------------------------------------------------------------------------

  #scopes(ref: ImageReference, access: Access): string[] {
    const scopes = [`repository:${ref.repository}:${access.scope}`];
    if (access.from !== undefined && access.from !== ref.repository) scopes.push(`repository:${access.from}:pull`);
    return scopes;
  }

  #scopeKey(ref: ImageReference, access: Access): string {
    return `${ref.apiHost} ${this.#scopes(ref, access).join(' ')}`;
  }

  #authorization(ref: ImageReference, access: Access): string | undefined {
    const t = this.#tokens.get(this.#scopeKey(ref, access));
    if (t && t.expires > Date.now()) return `Bearer ${t.token}`;
    if (this.#basicHosts.has(ref.apiHost)) {
      const cred = this.#credentials.lookup(ref.registry) ?? this.#credentials.lookup(ref.apiHost);
      if (cred?.kind === 'basic') return `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
    }
    return undefined;
  }

  #authRequired(ref: ImageReference): DiagnosticError {
    return new DiagnosticError(
      error('auth-required', `registry ${ref.registry} requires credentials for ${ref.repository}`, {
        hint: `log in (docker login ${ref.registry}, or skopeo login), or add an entry for ${ref.registry} to ~/.docker/config.json or $REGISTRY_AUTH_FILE`,
      }),
    );
  }

  #authFailed(ref: ImageReference): DiagnosticError {
    return new DiagnosticError(
      error('auth-failed', `registry ${ref.registry} rejected the credentials for ${ref.repository}`, {
        hint: `check the entry for ${ref.registry} in ~/.docker/config.json or $REGISTRY_AUTH_FILE`,
      }),
    );
  }

  /** Answers a challenge: fetches a Bearer token, or switches the host to Basic. */
  async #authenticate(ref: ImageReference, challenge: AuthChallenge, access: Access, signal: AbortSignal | undefined): Promise<void> {
    const cred = this.#credentials.lookup(ref.registry) ?? this.#credentials.lookup(ref.apiHost);
    if (challenge.scheme === 'basic') {
      if (cred?.kind !== 'basic') throw this.#authRequired(ref);
      this.#basicHosts.add(ref.apiHost);
      return;
    }
    const realm = challenge.params['realm'];
    if (realm === undefined || !/^https?:\/\//.test(realm)) {
      throw new DiagnosticError(
        error('auth-failed', `registry ${ref.registry} sent a Bearer challenge without a usable realm`, {
          hint: 'the registry is misconfigured; report it to its owner',
        }),
      );
    }
    const url = new URL(realm);
    if (challenge.params['service'] !== undefined) url.searchParams.set('service', challenge.params['service']);
    const scopes = this.#scopes(ref, access);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    let method: 'GET' | 'POST' = 'GET';
    let body: string | undefined;
    if (cred?.kind === 'basic') headers['authorization'] = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
    else if (cred?.kind === 'identity-token') {
      method = 'POST';
      headers['content-type'] = 'application/x-www-form-urlencoded';
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.token, client_id: 'orchestrator', scope: scopes.join(' ') });
      if (challenge.params['service'] !== undefined) form.set('service', challenge.params['service']);
      body = form.toString();
    }
    const res = await this.#retrying(`${method} token for ${ref.registry}`, signal, async () => {
      const r = await request(url, { method, headers, body: body ?? null, dispatcher: this.#agent, signal: signal ?? null });
      if (r.statusCode >= 500 || r.statusCode === 429) {
        await r.body.dump();
        const ra = r.headers['retry-after'];
        throw new RetryableStatus(r.statusCode, parseRetryAfter(Array.isArray(ra) ? ra[0] : ra));
      }
      return r;
    });
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      throw cred ? this.#authFailed(ref) : this.#authRequired(ref);
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new DiagnosticError(error('auth-failed', `the token service of registry ${ref.registry} answered HTTP ${res.statusCode}`, { hint: 'try again later' }));
    }
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      json = (await res.body.json()) as typeof json;
    } catch {
      throw new DiagnosticError(error('auth-failed', `the token service of registry ${ref.registry} answered with something that is not JSON`));
    }
    const token = typeof json.token === 'string' ? json.token : typeof json.access_token === 'string' ? json.access_token : undefined;
    if (token === undefined || token === '') {
      throw new DiagnosticError(error('auth-failed', `the token service of registry ${ref.registry} gave no token`));
    }
    const seconds = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : 60;
    this.#tokens.set(this.#scopeKey(ref, access), { token, expires: Date.now() + Math.max(1, seconds - 5) * 1000 });
  }

  // ---- transport ---------------------------------------------------------------------------

  /**
   * One request with auth (one challenge round) and redirects. Returns any status; the caller
   * decides. Network errors are thrown as they come (the retry layer classifies them).
   */
  async #send(
    ref: ImageReference,
    method: Method,
    pathOrUrl: string,
    options: { headers?: Record<string, string>; body?: Body; scope?: Scope; from?: string | undefined; signal?: AbortSignal | undefined },
  ): Promise<Response> {
    const access: Access = { scope: options.scope ?? 'pull', from: options.from };
    const origin = this.#base(ref);
    let url = new URL(pathOrUrl, origin);
    let authRound = 0;
    for (let hop = 0; hop < 6; hop++) {
      const headers: Record<string, string> = { 'user-agent': 'orchestrator', ...options.headers };
      const auth = url.origin === new URL(origin).origin ? this.#authorization(ref, access) : undefined;
      if (auth !== undefined) headers['authorization'] = auth;
      const r = await request(url, {
        method,
        headers,
        body: typeof options.body === 'function' ? options.body() : (options.body ?? null),
        dispatcher: this.#agent,
        signal: options.signal,
      });
      const res: Response = { status: r.statusCode, headers: r.headers, body: r.body, url: url.toString() };
      if (res.status === 401 && url.origin === new URL(origin).origin) {
        await res.body.dump();
        const challenge = parseAuthChallenge(res.headers['www-authenticate']);
        if (authRound > 0 || challenge === undefined) {
          const cred = this.#credentials.lookup(ref.registry) ?? this.#credentials.lookup(ref.apiHost);
          throw cred ? this.#authFailed(ref) : this.#authRequired(ref);
        }
        authRound++;
        await this.#authenticate(ref, challenge, access, options.signal);
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(res.status)) {
        const location = header(res, 'location');
        await res.body.dump();
        if (location === undefined) return res;
        url = new URL(location, url);
        continue;
      }
      return res;
    }
    throw new DiagnosticError(error('registry-error', `registry ${ref.registry}: too many redirects for ${method} ${new URL(pathOrUrl, origin).pathname}`));
  }

  #delay(attempt: number, retryAfterMs: number | undefined): number {
    if (retryAfterMs !== undefined) return Math.min(retryAfterMs, this.#retry.maxRetryAfterMs);
    const exp = Math.min(this.#retry.maxMs, this.#retry.baseMs * 2 ** (attempt - 1));
    return Math.round(exp / 2 + (Math.random() * exp) / 2);
  }

  /** Runs `fn` until it succeeds, fails in a non-retryable way, or runs out of attempts. */
  async #retrying<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>, registry = ''): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      try {
        return await fn();
      } catch (e) {
        if (signal?.aborted || !isRetryable(e)) throw e;
        if (attempt >= this.#retry.attempts) throw this.#unavailable(registry, what, e, attempt);
        const delayMs = this.#delay(attempt, e instanceof RetryableStatus ? e.retryAfterMs : undefined);
        this.#emit({ type: 'retry', what, attempt, delayMs, reason: describeFailure(e) });
        await sleep(delayMs, undefined, signal ? { signal } : {});
      }
    }
  }

  #unavailable(registry: string, what: string, e: unknown, attempts: number): DiagnosticError {
    return new DiagnosticError(
      error('registry-unavailable', `${what} failed on registry ${registry}: ${describeFailure(e)} (after ${attempts} attempts)`, {
        hint: 'the registry or the network is failing; try again later',
      }),
    );
  }

  #statusError(ref: ImageReference, res: Response, what: string, notFound: Diagnostic | undefined): DiagnosticError {
    if (res.status === 404 && notFound) return new DiagnosticError(notFound);
    if (res.status === 403) {
      return new DiagnosticError(
        error('access-denied', `registry ${ref.registry} denied access to ${ref.repository} (${what})`, {
          hint: 'check that the repository exists and that your credentials may read it',
        }),
      );
    }
    return new DiagnosticError(error('registry-error', `registry ${ref.registry} answered HTTP ${res.status} to ${what}`));
  }

  /** A request retried on 5xx/429/resets that must end in one of `expect`. */
  async #call(
    ref: ImageReference,
    method: Method,
    path: string,
    options: {
      expect: readonly number[];
      headers?: Record<string, string>;
      body?: Body;
      scope?: Scope;
      from?: string | undefined;
      notFound?: Diagnostic;
      signal?: AbortSignal | undefined;
    },
  ): Promise<Response> {
    const what = `${method} ${new URL(path, 'http://x').pathname}`;
    return this.#retrying(
      what,
      options.signal,
      async () => {
        const res = await this.#send(ref, method, path, options);
        if (options.expect.includes(res.status)) return res;
        await res.body.dump();
        if (res.status >= 500 || res.status === 429 || res.status === 408) {
          throw new RetryableStatus(res.status, parseRetryAfter(header(res, 'retry-after')));
        }
        throw this.#statusError(ref, res, what, options.notFound);
      },
      ref.registry,
    );
  }

  async #guard<T>(signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<Result<T>> {
    try {
      return ok(await fn());
    } catch (e) {
      if (e instanceof DiagnosticError) return fail(e.diagnostic);
      if (signal?.aborted) return fail(error('interrupted', 'interrupted', { hint: 'run the command again to continue' }));
      throw e;
    }
  }

  // ---- API ---------------------------------------------------------------------------------

  /** `GET /v2/`: reachable, and our credentials (if any) are accepted. */
  ping(ref: ImageReference, options: RequestOptions = {}): Promise<Result<void>> {
    return this.#guard(options.signal, async () => {
      await this.#call(ref, 'GET', '/v2/', { expect: [200], signal: options.signal }).then((r) => r.body.dump());
    });
  }

  /**
   * One manifest (index or image manifest) by tag or digest, verified: its bytes must hash to the
   * requested digest and to `Docker-Content-Digest` when the registry sends one.
   */
  getManifest(ref: ImageReference, options: RequestOptions & { store?: Store | undefined } = {}): Promise<Result<FetchedManifest>> {
    return this.#guard(options.signal, () => this.#getManifest(ref, options));
  }

  async #getManifest(ref: ImageReference, options: RequestOptions & { store?: Store | undefined }): Promise<FetchedManifest> {
    const what = formatReference(ref);
    if (ref.digest !== undefined && options.store) {
      const stream = await options.store.blobs.open(ref.digest, { signal: options.signal });
      if (stream) {
        const chunks: Buffer[] = [];
        for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
        const bytes = Buffer.concat(chunks);
        const parsed = parseManifest(bytes, undefined, what);
        if (parsed.ok) return { digest: ref.digest, mediaType: parsed.value.mediaType, bytes, manifest: parsed.value, cached: true };
      }
    }
    const tagOrDigest = manifestReference(ref);
    const res = await this.#call(ref, 'GET', `/v2/${ref.repository}/manifests/${tagOrDigest}`, {
      expect: [200],
      headers: { accept: MANIFEST_ACCEPT },
      signal: options.signal,
      notFound: error('registry-manifest-not-found', `${what}: not found (registry ${ref.registry} has no manifest '${tagOrDigest}' in ${ref.repository})`, {
        hint: 'check the repository name and the tag',
      }),
    });
    const bytes = Buffer.from(await res.body.arrayBuffer());
    const actual = sha256Digest(bytes);
    if (ref.digest !== undefined && actual !== ref.digest) {
      throw new DiagnosticError(
        error('manifest-digest-mismatch', `${what}: the manifest served hashes to ${shortDigest(actual)}, not the requested ${shortDigest(ref.digest)}`, {
          hint: 'the registry (or something between it and you) served a different manifest; nothing was stored',
        }),
      );
    }
    const served = header(res, 'docker-content-digest');
    if (served !== undefined && served.startsWith('sha256:') && served !== actual) {
      throw new DiagnosticError(
        error('manifest-digest-mismatch', `${what}: the manifest served hashes to ${shortDigest(actual)}, but the registry says ${served.slice(0, 19)}`, {
          hint: 'the registry (or something between it and you) altered the manifest; nothing was stored',
        }),
      );
    }
    const parsed = parseManifest(bytes, header(res, 'content-type'), what);
    if (!parsed.ok) throw new DiagnosticError(parsed.error);
    if (options.store) {
      const put = await options.store.blobs.putBytes(bytes, actual, { signal: options.signal });
      if (!put.ok) throw new DiagnosticError(put.error);
    }
    return { digest: actual, mediaType: parsed.value.mediaType, bytes, manifest: parsed.value, cached: false };
  }

  /** The image manifest for a platform, going through an index when the reference names one. */
  fetchManifest(ref: ImageReference, options: FetchManifestOptions = {}): Promise<Result<ResolvedManifest>> {
    return this.#guard(options.signal, async () => {
      const platform = options.platform ?? DEFAULT_PLATFORM;
      const top = await this.#getManifest(ref, options);
      if (top.manifest.kind === 'manifest') {
        return { reference: withDigest(ref, top.digest), digest: top.digest, mediaType: top.mediaType, bytes: top.bytes, manifest: top.manifest, platform, cached: top.cached };
      }
      const chosen = selectPlatform(top.manifest.manifests, platform, formatReference(ref));
      if (!chosen.ok) throw new DiagnosticError(chosen.error);
      const child = await this.#getManifest(withDigest(ref, chosen.value.digest), options);
      if (child.manifest.kind !== 'manifest') {
        throw new DiagnosticError(error('bad-manifest', `${formatReference(ref)}: the index entry for ${formatPlatform(platform)} is itself an index`));
      }
      return {
        reference: withDigest(ref, child.digest),
        digest: child.digest,
        mediaType: child.mediaType,
        bytes: child.bytes,
        manifest: child.manifest,
        platform: chosen.value.platform ?? platform,
        index: { digest: top.digest, mediaType: top.mediaType, bytes: top.bytes, index: top.manifest },
        cached: top.cached && child.cached,
      };
    });
  }

  /**
   * A blob into the store, verified on the fly and at the end. A valid blob already there is
   * success; a corrupt one is deleted and fetched again. Broken transfers resume with Range;
   * concurrent callers asking for the same digest share one download.
   */
  fetchBlob(ref: ImageReference, blob: Pick<Descriptor, 'digest' | 'size'>, options: FetchBlobOptions): Promise<Result<BlobInfo>> {
    const key = `${options.store.root}\0${blob.digest}`;
    const existing = this.#inflight.get(key);
    if (existing) return existing;
    const p = this.#guard(options.signal, () => this.#fetchBlob(ref, blob, options)).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  async #fetchBlob(ref: ImageReference, blob: Pick<Descriptor, 'digest' | 'size'>, options: FetchBlobOptions): Promise<BlobInfo> {
    const { store, signal } = options;
    const total = blob.size;
    if ((await store.blobs.verify(blob.digest, { size: total, signal })) === 'valid') {
      this.#emit({ type: 'blob-done', digest: blob.digest, total, cached: true });
      return { digest: blob.digest, size: total, path: store.blobs.path(blob.digest), written: false };
    }
    this.#emit({ type: 'blob-start', digest: blob.digest, total });
    for (let round = 1; ; round++) {
      const writer = await store.blobs.begin(blob.digest, total);
      try {
        await this.#download(ref, blob, writer, signal);
      } catch (e) {
        await writer.discard();
        throw e;
      }
      const committed = await writer.commit();
      if (committed.ok) {
        this.#emit({ type: 'blob-done', digest: blob.digest, total, cached: false });
        return committed.value;
      }
      // Wrong bytes: try once more from scratch, then give up.
      if (round >= 2 || committed.error.reason !== 'digest-mismatch') throw new DiagnosticError(committed.error);
      const delayMs = this.#delay(1, undefined);
      this.#emit({ type: 'retry', what: `GET /v2/${ref.repository}/blobs/${blob.digest}`, attempt: round, delayMs, reason: 'digest mismatch' });
      await sleep(delayMs, undefined, signal ? { signal } : {});
    }
  }

  async #download(
    ref: ImageReference,
    blob: Pick<Descriptor, 'digest' | 'size'>,
    writer: Awaited<ReturnType<Store['blobs']['begin']>>,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const path = `/v2/${ref.repository}/blobs/${blob.digest}`;
    const what = `GET ${path}`;
    const total = blob.size;
    let failures = 0;
    let lastProgress = 0;
    for (;;) {
      signal?.throwIfAborted();
      const start = writer.written;
      try {
        const headers: Record<string, string> = {};
        if (start > 0) {
          headers['range'] = `bytes=${start}-`;
          this.#emit({ type: 'blob-resume', digest: blob.digest, offset: start, total });
        }
        const res = await this.#send(ref, 'GET', path, { headers, signal });
        if (res.status === 206) {
          const m = /^bytes (\d+)-/.exec(header(res, 'content-range') ?? '');
          if (!m || Number(m[1]) !== start) {
            await res.body.dump();
            await writer.restart();
            throw new TruncatedTransfer();
          }
        } else if (res.status === 200) {
          if (start > 0) await writer.restart();
        } else if (res.status === 416 && start === total) {
          await res.body.dump();
          return;
        } else {
          await res.body.dump();
          if (res.status >= 500 || res.status === 429 || res.status === 408) {
            throw new RetryableStatus(res.status, parseRetryAfter(header(res, 'retry-after')));
          }
          throw this.#statusError(
            ref,
            res,
            what,
            error('blob-not-found', `registry ${ref.registry} has no blob ${shortDigest(blob.digest)} in ${ref.repository}`, {
              hint: 'the image is incomplete on the registry; push it again',
            }),
          );
        }
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          await writer.write(chunk);
          if (writer.written - lastProgress >= 256 * 1024 || writer.written === total) {
            lastProgress = writer.written;
            this.#emit({ type: 'blob-progress', digest: blob.digest, bytes: writer.written, total });
          }
        }
        if (writer.written < total) throw new TruncatedTransfer();
        return;
      } catch (e) {
        if (signal?.aborted || !isRetryable(e)) throw e;
        // A stretch that made progress does not count against the attempts.
        failures = writer.written > start ? 1 : failures + 1;
        if (failures >= this.#retry.attempts) throw this.#unavailable(ref.registry, what, e, failures);
        const delayMs = this.#delay(failures, e instanceof RetryableStatus ? e.retryAfterMs : undefined);
        this.#emit({ type: 'retry', what, attempt: failures, delayMs, reason: describeFailure(e) });
        await sleep(delayMs, undefined, signal ? { signal } : {});
      }
    }
  }

  // ---- push --------------------------------------------------------------------------------

  /** Whether the repository has the blob (`HEAD`); a size it reports must match `size`. */
  blobExists(ref: ImageReference, blob: Pick<Descriptor, 'digest' | 'size'>, options: RequestOptions = {}): Promise<Result<boolean>> {
    return this.#guard(options.signal, () => this.#blobExists(ref, blob, 'pull', options.signal));
  }

  async #blobExists(ref: ImageReference, blob: Pick<Descriptor, 'digest' | 'size'>, scope: Scope, signal: AbortSignal | undefined): Promise<boolean> {
    const res = await this.#call(ref, 'HEAD', `/v2/${ref.repository}/blobs/${blob.digest}`, { expect: [200, 404], scope, signal });
    await res.body.dump();
    if (res.status === 404) return false;
    // A registry that names another digest or size for it does not have this blob.
    const served = header(res, 'docker-content-digest');
    if (served !== undefined && served !== blob.digest) return false;
    const length = header(res, 'content-length');
    return length === undefined || Number(length) === blob.size;
  }

  /**
   * Puts a blob into a repository unless it is there already: `HEAD` first, then a
   * cross-repository mount from each of `mountFrom`, then an upload (one monolithic `PUT`, or
   * `PATCH` chunks with `chunkSize`). The source is checked against its digest and size before
   * anything is sent, and the registry's `Docker-Content-Digest` against it after. A failed
   * transfer is retried: a chunk from the offset the registry acknowledged, else a new upload.
   */
  pushBlob(ref: ImageReference, blob: BlobSource, options: PushBlobOptions = {}): Promise<Result<PushedBlob>> {
    return this.#guard(options.signal, () => this.#pushBlob(ref, blob, options));
  }

  async #pushBlob(ref: ImageReference, blob: BlobSource, options: PushBlobOptions): Promise<PushedBlob> {
    const { signal } = options;
    await checkSource(blob, signal);
    const base = { digest: blob.digest, size: blob.size };
    if (await this.#blobExists(ref, blob, 'pull,push', signal)) return { ...base, how: 'exists', bytesSent: 0 };
    let session: string | undefined;
    for (const from of options.mountFrom ?? []) {
      if (from === ref.repository) continue;
      const path = `/v2/${ref.repository}/blobs/uploads/?mount=${blob.digest}&from=${encodeURIComponent(from)}`;
      const res = await this.#call(ref, 'POST', path, { expect: [201, 202], scope: 'pull,push', from, signal });
      await res.body.dump();
      if (res.status === 201) {
        this.#checkServedDigest(ref, res, blob.digest, 'mounted');
        return { ...base, how: 'mounted', bytesSent: 0 };
      }
      // Not mountable: the registry started an upload instead, which the upload below uses.
      session = uploadLocation(ref, res);
    }
    const what = `upload of blob ${shortDigest(blob.digest)} to ${ref.repository}`;
    const chunkSize = options.chunkSize !== undefined && options.chunkSize > 0 ? options.chunkSize : 0;
    const sent = { bytes: 0 };
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      try {
        const location = session ?? (await this.#startUpload(ref, signal));
        session = undefined;
        const done =
          chunkSize > 0 && blob.size > 0
            ? await this.#uploadChunks(ref, location, blob, chunkSize, sent, options)
            : await this.#uploadWhole(ref, location, blob, sent, options);
        this.#checkServedDigest(ref, done, blob.digest, 'uploaded');
        return { ...base, how: 'uploaded', bytesSent: sent.bytes };
      } catch (e) {
        if (signal?.aborted || !isRetryable(e)) throw e;
        if (attempt >= this.#retry.attempts) throw this.#unavailable(ref.registry, what, e, attempt);
        const delayMs = this.#delay(attempt, e instanceof RetryableStatus ? e.retryAfterMs : undefined);
        this.#emit({ type: 'retry', what, attempt, delayMs, reason: describeFailure(e) });
        await sleep(delayMs, undefined, signal ? { signal } : {});
      }
    }
  }

  /** `POST /blobs/uploads/`: a new upload session's URL. */
  async #startUpload(ref: ImageReference, signal: AbortSignal | undefined): Promise<string> {
    const res = await this.#call(ref, 'POST', `/v2/${ref.repository}/blobs/uploads/`, { expect: [202], scope: 'pull,push', signal });
    await res.body.dump();
    return uploadLocation(ref, res);
  }

  /** One `PUT ?digest=` with the whole blob. */
  async #uploadWhole(ref: ImageReference, location: string, blob: BlobSource, sent: { bytes: number }, options: PushBlobOptions): Promise<Response> {
    sent.bytes += blob.size;
    const res = await this.#send(ref, 'PUT', withDigestParam(location, blob.digest), {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
      body: sourceBody(blob, 0, blob.size),
      scope: 'pull,push',
      signal: options.signal,
    });
    await this.#expectUploadStatus(ref, res, 201, 'PUT');
    options.onProgress?.(blob.size, blob.size);
    return res;
  }

  /**
   * `PATCH` chunks, each with its `Content-Range`, then `PUT ?digest=`. A failed chunk asks the
   * registry where the upload stands (`GET` on the session) and goes on from there; when the
   * session is gone the error goes up, and the caller starts a new upload.
   */
  async #uploadChunks(
    ref: ImageReference,
    location: string,
    blob: BlobSource,
    chunkSize: number,
    sent: { bytes: number },
    options: PushBlobOptions,
  ): Promise<Response> {
    const { signal } = options;
    let url = location;
    let offset = 0;
    let failures = 0;
    while (offset < blob.size) {
      const end = Math.min(blob.size, offset + chunkSize);
      try {
        sent.bytes += end - offset;
        const res = await this.#send(ref, 'PATCH', url, {
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(end - offset), 'content-range': `${offset}-${end - 1}` },
          body: sourceBody(blob, offset, end),
          scope: 'pull,push',
          signal,
        });
        await this.#expectUploadStatus(ref, res, 202, 'PATCH');
        url = uploadLocation(ref, res, url);
        const acknowledged = rangeEnd(header(res, 'range'));
        // Trust the registry's count only when it moved forward (`0-0` is ambiguous) and stays in the chunk.
        offset = acknowledged !== undefined && acknowledged > offset && acknowledged <= end ? acknowledged : end;
        failures = 0;
        options.onProgress?.(offset, blob.size);
      } catch (e) {
        failures += 1;
        if (signal?.aborted || !isRetryable(e) || failures >= this.#retry.attempts) throw e;
        const delayMs = this.#delay(failures, e instanceof RetryableStatus ? e.retryAfterMs : undefined);
        this.#emit({ type: 'retry', what: `PATCH /v2/${ref.repository}/blobs/uploads/`, attempt: failures, delayMs, reason: describeFailure(e) });
        await sleep(delayMs, undefined, signal ? { signal } : {});
        const status = await this.#send(ref, 'GET', url, { scope: 'pull,push', signal });
        await status.body.dump();
        if (status.status !== 204) throw e;
        url = uploadLocation(ref, status, url);
        offset = rangeEnd(header(status, 'range')) ?? 0;
      }
    }
    const res = await this.#send(ref, 'PUT', withDigestParam(url, blob.digest), {
      headers: { 'content-type': 'application/octet-stream', 'content-length': '0' },
      body: new Uint8Array(0),
      scope: 'pull,push',
      signal,
    });
    await this.#expectUploadStatus(ref, res, 201, 'PUT');
    return res;
  }

  /** The status an upload request must end in; retryable ones are thrown as such, the rest as diagnostics. */
  async #expectUploadStatus(ref: ImageReference, res: Response, expected: number, method: Method): Promise<void> {
    if (res.status === expected) return;
    const text = await res.body.text().catch(() => '');
    if (res.status >= 500 || res.status === 429 || res.status === 408 || res.status === 416) {
      throw new RetryableStatus(res.status, parseRetryAfter(header(res, 'retry-after')));
    }
    const what = `${method} /v2/${ref.repository}/blobs/uploads/`;
    if (res.status === 400 && /DIGEST_INVALID|SIZE_INVALID/.test(text)) {
      throw new DiagnosticError(
        error('digest-mismatch', `registry ${ref.registry} refused the upload to ${ref.repository}: the bytes it received do not match the digest (${what})`, {
          hint: 'something between orchestrator and the registry altered the upload; try again',
        }),
      );
    }
    throw this.#statusError(ref, res, what, undefined);
  }

  #checkServedDigest(ref: ImageReference, res: Response, digest: Digest, how: string): void {
    const served = header(res, 'docker-content-digest');
    if (served !== undefined && served !== digest) {
      throw new DiagnosticError(
        error('digest-mismatch', `registry ${ref.registry} ${how} blob ${shortDigest(digest)} in ${ref.repository} as ${served.slice(0, 19)}`, {
          hint: 'the registry (or something between it and you) altered the blob; nothing that refers to it was pushed',
        }),
      );
    }
  }

  /**
   * Puts a manifest (any media type: image manifest, index, artifact) under the reference's tag,
   * or its digest when it has no tag. The registry's `Docker-Content-Digest` must be the bytes'
   * digest. Push its blobs first: registries refuse a manifest whose blobs they lack.
   */
  pushManifest(ref: ImageReference, bytes: Uint8Array, options: PushManifestOptions): Promise<Result<{ readonly digest: Digest }>> {
    return this.#guard(options.signal, async () => {
      const digest = sha256Digest(bytes);
      if (ref.digest !== undefined && ref.digest !== digest) {
        throw new DiagnosticError(
          error('manifest-digest-mismatch', `${formatReference(ref)}: the manifest to push hashes to ${shortDigest(digest)}, not ${shortDigest(ref.digest)}`, {
            hint: 'push it by tag, or name the digest of these bytes',
          }),
        );
      }
      const tagOrDigest = ref.tag ?? digest;
      const res = await this.#call(ref, 'PUT', `/v2/${ref.repository}/manifests/${tagOrDigest}`, {
        expect: [200, 201],
        headers: { 'content-type': options.mediaType, 'content-length': String(bytes.length) },
        body: bytes,
        scope: 'pull,push',
        signal: options.signal,
      });
      await res.body.dump();
      const served = header(res, 'docker-content-digest');
      if (served !== undefined && served !== digest) {
        throw new DiagnosticError(
          error('manifest-digest-mismatch', `${formatReference(ref)}: registry ${ref.registry} stored the manifest as ${served.slice(0, 19)}, not ${shortDigest(digest)}`, {
            hint: 'the registry (or something between it and you) altered the manifest',
          }),
        );
      }
      return { digest };
    });
  }
}

/** The source's digest and size, checked by reading it; a difference is a `digest-mismatch` before any upload. */
async function checkSource(blob: BlobSource, signal: AbortSignal | undefined): Promise<void> {
  let size = 0;
  let actual: Digest;
  if ('bytes' in blob) {
    size = blob.bytes.length;
    actual = sha256Digest(blob.bytes);
  } else {
    const hash = createHash('sha256');
    try {
      for await (const chunk of createReadStream(blob.path, { signal }) as AsyncIterable<Buffer>) {
        size += chunk.length;
        hash.update(chunk);
      }
    } catch (e) {
      if (signal?.aborted) throw e;
      const code = (e as { code?: unknown }).code;
      throw new DiagnosticError(
        error('layer-read-failed', `cannot read the blob ${shortDigest(blob.digest)} to push from ${blob.path}: ${typeof code === 'string' ? code : String(e)}`, {
          hint: 'the file was removed or is unreadable; build again',
        }),
      );
    }
    actual = `sha256:${hash.digest('hex')}` as Digest;
  }
  if (size !== blob.size) {
    throw new DiagnosticError(
      error('blob-size-mismatch', `the blob ${shortDigest(blob.digest)} to push has ${size} bytes, not the ${blob.size} its descriptor says`, {
        hint: 'the source changed after its descriptor was made; nothing was uploaded',
      }),
    );
  }
  if (actual !== blob.digest) {
    throw new DiagnosticError(
      error('digest-mismatch', `the blob to push hashes to ${shortDigest(actual)}, not the ${shortDigest(blob.digest)} its descriptor says`, {
        hint: 'the source changed after its descriptor was made; nothing was uploaded',
      }),
    );
  }
}

/** The bytes `[start, end)` of a source, as a request body. */
function sourceBody(blob: BlobSource, start: number, end: number): Body {
  if ('bytes' in blob) return blob.bytes.subarray(start, end);
  if (end <= start) return new Uint8Array(0);
  const path = blob.path;
  return () => createReadStream(path, { start, end: end - 1 });
}

/** An upload response's `Location` (relative or absolute), or `fallback`. */
function uploadLocation(ref: ImageReference, res: Response, fallback?: string): string {
  const location = header(res, 'location');
  if (location !== undefined && location !== '') return new URL(location, res.url).toString();
  if (fallback !== undefined) return fallback;
  throw new DiagnosticError(error('registry-error', `registry ${ref.registry} started an upload to ${ref.repository} without a Location`));
}

function withDigestParam(location: string, digest: Digest): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.toString();
}

/** `Range: 0-N` (inclusive, as distribution sends it) → N + 1 bytes received; `0-0` is taken as none. */
function rangeEnd(range: string | undefined): number | undefined {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(range?.trim() ?? '');
  if (!m) return undefined;
  const last = Number(m[1]);
  return last === 0 ? 0 : last + 1;
}

