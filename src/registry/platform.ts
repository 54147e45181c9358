import { error } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import type { Descriptor, Platform } from './media-types.js';

export const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

/** `os/arch[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`. */
export function parsePlatform(text: string): Result<Platform> {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p))) {
    return fail(
      error('bad-platform', `invalid platform '${text}'`, { hint: "write it as OS/ARCH[/VARIANT], e.g. 'linux/amd64' or 'linux/arm64/v8'" }),
    );
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return ok({ os, architecture, ...(variant !== undefined ? { variant } : {}) });
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant !== undefined ? `/${p.variant}` : ''}`;
}

function normalVariant(p: Platform): string | undefined {
  if (p.variant !== undefined) return p.variant;
  if (p.architecture === 'arm64') return 'v8';
  return undefined;
}

/**
 * The index entry for `want`: os and architecture equal; when `want` names a variant it must
 * match (arm64 without one counts as v8). Entries without a platform (attestations) never match.
 */
export function selectPlatform(manifests: readonly Descriptor[], want: Platform, what: string): Result<Descriptor> {
  const candidates = manifests.filter((d) => d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture);
  const match =
    want.variant === undefined
      ? (candidates.find((d) => normalVariant(d.platform!) === normalVariant(want)) ?? candidates[0])
      : candidates.find((d) => normalVariant(d.platform!) === normalVariant(want));
  if (match) return ok(match);
  const available = [...new Set(manifests.filter((d) => d.platform && d.platform.os !== 'unknown').map((d) => formatPlatform(d.platform!)))];
  return fail(
    error('platform-not-found', `${what} has no image for platform ${formatPlatform(want)}`, {
      hint: available.length > 0 ? `available: ${available.join(', ')}; choose one with --platform` : 'the index lists no platforms',
    }),
  );
}
