import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter } from 'node:path';
import type { DetectedImage } from '../image/detect-image.js';
import { findExecutable } from '../core/find-executable.js';

/**
 * How a caller who is not root sees an image file (docs/ARCHITECTURE.md, Runtime):
 * - `fuse`: mounted read-only through FUSE inside the session's user namespace (squashfuse for
 *   squashfs, fuse2fs for ext3), when /dev/fuse is usable by the caller and the helper is installed;
 * - `extract`: extracted once into the caller's cache (unsquashfs, debugfs).
 * `ORCHESTRATOR_IMAGE_MOUNT=extract` forces extraction.
 */
export type NonRootImageMount = { readonly kind: 'fuse'; readonly helper: string } | { readonly kind: 'extract' };

const HELPER_OF: Readonly<Record<'squashfs' | 'ext3', string>> = { squashfs: 'squashfuse', ext3: 'fuse2fs' };

/** FUSE or extraction for `image` (a squashfs or ext3 file) as this caller. */
export async function nonRootImageMount(
  image: DetectedImage & { format: 'squashfs' | 'ext3' },
  options: { env: Readonly<Record<string, string | undefined>>; fuseDevice?: string },
): Promise<NonRootImageMount> {
  if (options.env['ORCHESTRATOR_IMAGE_MOUNT'] === 'extract') return { kind: 'extract' };
  const device = options.fuseDevice ?? '/dev/fuse';
  const usable = await access(device, constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  if (!usable) return { kind: 'extract' };
  const searchPath = [options.env['PATH'] ?? '', '/usr/bin', '/bin', '/usr/sbin', '/sbin'].filter(Boolean).join(delimiter);
  const helper = await findExecutable(HELPER_OF[image.format], searchPath);
  return helper !== undefined ? { kind: 'fuse', helper } : { kind: 'extract' };
}
