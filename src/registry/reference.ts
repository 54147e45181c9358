import { error, type SourceLocation } from '../core/diagnostic.js';
import { parseDigest, type Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';

/**
 * A normalised `docker://` image reference, as Docker and Apptainer read them:
 * `busybox` → `docker.io/library/busybox:latest`, API host `registry-1.docker.io`.
 */
export interface ImageReference {
  /** The registry as named: `docker.io`, `127.0.0.1:5000`, `ghcr.io`. */
  readonly registry: string;
  /** The host (and port) the distribution API is served from: `registry-1.docker.io` for `docker.io`. */
  readonly apiHost: string;
  /** The repository path: `library/busybox`, `org/team/tool`. */
  readonly repository: string;
  /** The tag; `latest` when neither tag nor digest was given, undefined for a digest-only reference. */
  readonly tag?: string;
  readonly digest?: Digest;
  /** `docker.io/library/busybox:latest`, `host:5000/a/b@sha256:...`, `r/a:t@sha256:...`. */
  readonly canonical: string;
}

export interface ReferenceOptions {
  /** The recipe header `Registry:` (used when the reference names no registry). */
  readonly registry?: string | undefined;
  /** The recipe header `Namespace:` (used instead of `library` for one-component names). */
  readonly namespace?: string | undefined;
  /** Where the reference was written, attached to a `bad-reference` diagnostic. */
  readonly location?: SourceLocation | undefined;
}

export const DEFAULT_REGISTRY = 'docker.io';
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

// The grammar of distribution/reference.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HOST_LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const MAX_NAME = 255;

const HINT = 'write it as [HOST[:PORT]/]NAME[:TAG][@sha256:HEX], e.g. docker://ubuntu:24.04 or docker://127.0.0.1:5000/team/tool@sha256:...';

function bad(text: string, why: string, options: ReferenceOptions, hint = HINT): Result<ImageReference> {
  return fail(error('bad-reference', `invalid image reference '${text}': ${why}`, { location: options.location, hint }));
}

/** Is `part` (the first `/`-separated component) a registry host rather than a namespace? Docker's rule. */
function looksLikeHost(part: string): boolean {
  return part.includes('.') || part.includes(':') || part === 'localhost' || part !== part.toLowerCase();
}

function checkHost(host: string): string | undefined {
  let name = host;
  let port: string | undefined;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close === -1) return `registry host '${host}' has an unclosed '['`;
    const rest = host.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return `registry port in '${host}' must be a number`;
    if (!/^[0-9a-fA-F:.]+$/.test(host.slice(1, close))) return `registry host '${host}' is not an IPv6 address`;
    return undefined;
  }
  const colon = host.lastIndexOf(':');
  if (colon !== -1) {
    name = host.slice(0, colon);
    port = host.slice(colon + 1);
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return `registry port '${port}' must be a number from 1 to 65535`;
  }
  if (name === '') return `registry host is empty in '${host}'`;
  for (const label of name.split('.')) {
    if (!HOST_LABEL.test(label)) return `registry host '${name}' is not a valid host name`;
  }
  return undefined;
}

/** The API host of a registry: Docker Hub's aliases map to `registry-1.docker.io`. */
export function apiHostOf(registry: string): string {
  return DOCKER_HUB_ALIASES.has(registry) ? DOCKER_HUB_API_HOST : registry;
}

/**
 * Parses `docker://[HOST[:PORT]/]PATH[:TAG][@sha256:HEX]` (the `docker://` prefix is optional).
 * Invalid references give a `bad-reference` diagnostic naming the bad part.
 */
// Long on purpose: the reference read left to right (scheme, host, path, tag, digest), each part
// with its own error.
export function parseReference(text: string, options: ReferenceOptions = {}): Result<ImageReference> {
  let rest = text.trim();
  if (rest.startsWith('docker://')) rest = rest.slice('docker://'.length);
  else if (/^[a-z][a-z0-9+.-]*:\/\//.test(rest)) {
    const scheme = rest.slice(0, rest.indexOf(':'));
    return bad(text, `unsupported scheme '${scheme}://'`, options, "registry images are written 'docker://NAME[:TAG]'");
  }
  if (rest.startsWith('//')) rest = rest.slice(2);
  if (rest === '') return bad(text, 'the image name is empty', options);

  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const parsed = parseDigest(d);
    if (!parsed) {
      const why = d.startsWith('sha256:')
        ? `digest '${d}' must be 'sha256:' followed by 64 lowercase hex digits`
        : `digest '${d}' is not a sha256 digest`;
      return bad(text, why, options);
    }
    digest = parsed;
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      return bad(text, `tag '${tag}' may hold only letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')`, options);
    }
  }
  if (rest === '') return bad(text, 'the image name is empty', options);

  const parts = rest.split('/');
  let registry: string | undefined;
  if (parts.length > 1 && looksLikeHost(parts[0]!)) {
    registry = parts.shift()!;
    const why = checkHost(registry);
    if (why) return bad(text, why, options);
  }
  for (const part of parts) {
    if (part === '') return bad(text, `the repository path '${parts.join('/')}' has an empty component`, options);
    if (!PATH_COMPONENT.test(part)) {
      const why =
        part !== part.toLowerCase()
          ? `repository name component '${part}' must be lowercase`
          : `repository name component '${part}' may hold only a-z, 0-9 and single '.', '_', '__' or '-' separators between them`;
      return bad(text, why, options, part !== part.toLowerCase() ? `try '${part.toLowerCase()}'` : HINT);
    }
  }

  if (registry === undefined && options.registry !== undefined && options.registry !== '') {
    registry = options.registry.replace(/^[a-z]+:\/\//, '').replace(/\/+$/, '');
    const why = checkHost(registry);
    if (why) return bad(options.registry, why, options, 'the Registry: header takes a host name, optionally with :PORT');
  }
  registry ??= DEFAULT_REGISTRY;
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io' || registry === 'registry.hub.docker.com') {
    registry = DEFAULT_REGISTRY;
  }

  if (parts.length === 1) {
    const ns = options.namespace?.replace(/^\/+|\/+$/g, '');
    if (ns !== undefined && ns !== '') {
      for (const part of ns.split('/')) {
        if (!PATH_COMPONENT.test(part)) {
          return bad(ns, `namespace component '${part}' must be lowercase a-z, 0-9 and '.', '_', '-' separators`, options);
        }
      }
      parts.unshift(...ns.split('/'));
    } else if (registry === DEFAULT_REGISTRY) parts.unshift('library');
  }
  const repository = parts.join('/');
  if (registry.length + 1 + repository.length > MAX_NAME) {
    return bad(text, `the name is longer than ${MAX_NAME} characters`, options);
  }
  if (tag === undefined && digest === undefined) tag = 'latest';

  const canonical = `${registry}/${repository}${tag !== undefined ? `:${tag}` : ''}${digest !== undefined ? `@${digest}` : ''}`;
  return ok({
    registry,
    apiHost: apiHostOf(registry),
    repository,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
    canonical,
  });
}

/** `docker://` + canonical form. */
export function formatReference(ref: ImageReference): string {
  return `docker://${ref.canonical}`;
}

/** The same repository, pinned to `digest` (tag kept for display). */
export function withDigest(ref: ImageReference, digest: Digest): ImageReference {
  const canonical = `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}@${digest}`;
  return { ...ref, digest, canonical };
}

/** The tag or digest to ask the registry's manifest endpoint for (digest wins). */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}
