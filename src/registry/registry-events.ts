import type { Digest } from '../core/digest.js';

/**
 * What the registry client and `pullImage` report while they work. Core code never prints;
 * reporters (src/report, src/cli) render these. No event ever carries a credential, a token or
 * an Authorization header.
 */
export type RegistryEvent =
  | {
      readonly type: 'manifest-resolved';
      /** `docker://...` as asked for. */
      readonly reference: string;
      /** The image manifest digest (for the chosen platform). */
      readonly digest: Digest;
      /** The index digest the tag pointed at, for multi-platform images. */
      readonly indexDigest?: Digest;
      readonly platform: string;
      /** True when the manifest came from the store (no network). */
      readonly cached: boolean;
    }
  | { readonly type: 'blob-start'; readonly digest: Digest; readonly total: number }
  | { readonly type: 'blob-progress'; readonly digest: Digest; readonly bytes: number; readonly total: number }
  | { readonly type: 'blob-resume'; readonly digest: Digest; readonly offset: number; readonly total: number }
  | { readonly type: 'blob-done'; readonly digest: Digest; readonly total: number; readonly cached: boolean }
  | {
      readonly type: 'retry';
      /** `GET /v2/library/busybox/blobs/sha256:...` (method and path only). */
      readonly what: string;
      /** 1-based number of the attempt that failed. */
      readonly attempt: number;
      readonly delayMs: number;
      /** `HTTP 503`, `HTTP 429`, `connection reset (ECONNRESET)`, `digest mismatch`. */
      readonly reason: string;
    };

export type RegistryEventListener = (event: RegistryEvent) => void;
