import { readFile } from 'node:fs/promises';
import { error } from '../core/diagnostic.js';
import { parseDigest, type Digest } from '../core/digest.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { fail, ok, type Result } from '../core/result.js';

/**
 * `orchestrator.lock`: registry tags pinned to digests, next to orchestrator.yaml.
 *
 *     {
 *       "version": 1,
 *       "images": {
 *         "docker://docker.io/library/ubuntu:24.04": {
 *           "digest": "sha256:…",                      // what the tag pointed at (index or manifest)
 *           "platforms": { "linux/amd64": "sha256:…" }  // image manifest used per platform
 *         }
 *       }
 *     }
 *
 * Keys are normalised references (`docker://` + canonical form), sorted; the file is written
 * atomically with a trailing newline so that it diffs well in version control.
 */
export interface LockEntry {
  readonly digest: Digest;
  readonly platforms: Readonly<Record<string, Digest>>;
}

export interface LockData {
  readonly version: 1;
  readonly images: Readonly<Record<string, LockEntry>>;
}

export const LOCK_FILE_NAME = 'orchestrator.lock';

export function emptyLock(): LockData {
  return { version: 1, images: {} };
}

function bad(path: string, why: string): Result<never> {
  return fail(
    error('bad-lock-file', `${path}: ${why}`, {
      hint: `fix or delete ${path} and run 'orchestrator lock' (or pull with --pull) to pin the images again`,
    }),
  );
}

/** Reads a lock file; a missing file is an empty lock. */
export async function readLockFile(path: string): Promise<Result<LockData>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(emptyLock());
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return bad(path, 'not valid JSON');
  }
  const j = json as { version?: unknown; images?: unknown } | null;
  if (!j || typeof j !== 'object' || j.version !== 1) return bad(path, "expected an object with \"version\": 1");
  if (!j.images || typeof j.images !== 'object' || Array.isArray(j.images)) return bad(path, 'expected an "images" object');
  const images: Record<string, LockEntry> = {};
  for (const [key, value] of Object.entries(j.images as Record<string, unknown>)) {
    const v = value as { digest?: unknown; platforms?: unknown } | null;
    const digest = typeof v?.digest === 'string' ? parseDigest(v.digest) : undefined;
    if (!digest) return bad(path, `images["${key}"].digest is not a sha256 digest`);
    const platforms: Record<string, Digest> = {};
    if (v?.platforms !== undefined) {
      if (!v.platforms || typeof v.platforms !== 'object') return bad(path, `images["${key}"].platforms is not an object`);
      for (const [p, d] of Object.entries(v.platforms as Record<string, unknown>)) {
        const pd = typeof d === 'string' ? parseDigest(d) : undefined;
        if (!pd) return bad(path, `images["${key}"].platforms["${p}"] is not a sha256 digest`);
        platforms[p] = pd;
      }
    }
    images[key] = { digest, platforms };
  }
  return ok({ version: 1, images });
}

/** A copy of `lock` with `key` set (platform digests merged when the tag digest is unchanged). */
export function withLockEntry(lock: LockData, key: string, digest: Digest, platform: string, manifestDigest: Digest): LockData {
  const prev = lock.images[key];
  const platforms = prev && prev.digest === digest ? { ...prev.platforms } : {};
  platforms[platform] = manifestDigest;
  return { version: 1, images: { ...lock.images, [key]: { digest, platforms } } };
}

export function formatLock(lock: LockData): string {
  const sortObj = <T>(o: Readonly<Record<string, T>>): Record<string, T> =>
    Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const images = Object.fromEntries(
    Object.entries(sortObj(lock.images)).map(([k, e]) => [k, { digest: e.digest, platforms: sortObj(e.platforms) }]),
  );
  return JSON.stringify({ version: 1, images }, null, 2) + '\n';
}

export async function writeLockFile(path: string, lock: LockData): Promise<void> {
  await writeFileAtomic(path, formatLock(lock));
}
