import { createHash } from 'node:crypto';

declare const digestBrand: unique symbol;
/** `sha256:<64 lowercase hex>`. Construct only through parseDigest or sha256Digest. */
export type Digest = string & { readonly [digestBrand]: true };

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export function isDigest(value: string): value is Digest {
  return DIGEST_RE.test(value);
}

/** The digest, or undefined when `value` is not a sha256 digest in canonical form. */
export function parseDigest(value: string): Digest | undefined {
  return isDigest(value) ? value : undefined;
}

export function sha256Digest(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

/** The hex part of a digest, as used in store paths. */
export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

/** A short form for messages: `sha256:0123456789ab`. */
export function shortDigest(digest: Digest): string {
  return digest.slice(0, 'sha256:'.length + 12);
}

/**
 * Canonical JSON: object keys sorted, no whitespace, undefined members dropped. The basis of every
 * key, so that the same inputs give the same digest whatever order they were assembled in.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('canonicalJson: non-finite number');
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}
