import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { lastLines, runCommand } from '../core/run-command.js';
import { detectImage, type DetectedImage } from '../image/detect-image.js';
import { restoreExt3Metadata } from '../image/ext3-metadata.js';
import type { ImageReference } from '../registry/reference.js';
import type { PushedBlob, RegistryClient } from '../registry/registry-client.js';
import type { Store } from '../store/store.js';
import { publishImage, type PublishedImage } from './publish-image.js';

/** The architecture an image built here is published as (`amd64`, `arm64`). */
export const IMAGE_ARCHITECTURE = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;

const isDir = (p: string): Promise<boolean> => stat(p).then((s) => s.isDirectory(), () => false);

/**
 * A target's recorded overlay stack (top first) when every folder of it is still in the cache:
 * then a push sends one layer per cached step, and a second push uploads only the steps that
 * changed. Undefined when there is none or the cache lost a folder (`cache prune`).
 */
export async function recordedStack(lowers: readonly string[] | undefined): Promise<readonly string[] | undefined> {
  if (lowers === undefined || lowers.length === 0) return undefined;
  return (await Promise.all(lowers.map(isDir))).every(Boolean) ? lowers : undefined;
}

/** An image file's tree, exactly (owners, modes, xattrs), in a temp folder of the store; `remove` deletes it. */
export async function extractImageTree(image: DetectedImage, store: Store, signal: AbortSignal): Promise<Result<{ root: string; remove: () => Promise<void> }>> {
  const dir = await store.makeTempDir('push-extract');
  const remove = (): Promise<void> => rm(dir, { recursive: true, force: true });
  const root = join(dir, 'root');
  const tool = image.format === 'squashfs' ? 'unsquashfs' : 'debugfs';
  const argv =
    image.format === 'squashfs'
      ? ['-n', '-q', '-d', root, '-o', String(image.offset), image.path]
      : ['-R', `rdump / ${dir}`, image.offset > 0 ? `${image.path}?offset=${image.offset}` : image.path];
  const r = await runCommand(tool, argv, { signal });
  if (r.kind !== 'exited' || r.code !== 0) {
    await remove();
    return fail(error('image-extract-failed', `could not extract ${image.path} with ${tool}: ${lastLines(r.output, 1) || r.kind}`, { hint: `is ${tool} installed (scripts/install-system-deps.sh)?` }));
  }
  if (image.format === 'squashfs') return ok({ root, remove });
  // debugfs dumps the root's entries into the folder itself, with less than their owners and modes.
  const restored = await restoreExt3Metadata(image, dir, { signal });
  if (!restored.ok) {
    await remove();
    return restored;
  }
  return ok({ root: dir, remove });
}

export interface PushOutputOptions {
  readonly client: RegistryClient;
  readonly store: Store;
  /** The output: a sandbox folder or an image file. */
  readonly output: string;
  /** The output's recorded overlay stack (top first), when it has one (TargetRecord.lowers). */
  readonly lowers?: readonly string[] | undefined;
  readonly onBlob?: (blob: PushedBlob) => void;
  readonly signal: AbortSignal;
}

/**
 * Publishes a built output as an OCI image (README, "Publishing images"), as `orchestrator push`
 * and `up` (a target's `push:`) both do: one layer per cached step when its recorded stack is
 * still in the cache, else the sandbox folder as one layer, else the image file's tree, extracted
 * exactly into the store for the push and removed after.
 */
export async function pushOutput(ref: ImageReference, options: PushOutputOptions): Promise<Result<PublishedImage, Diagnostic>> {
  const { store, signal } = options;
  let lowers = await recordedStack(options.lowers);
  let remove: (() => Promise<void>) | undefined;
  if (lowers === undefined) {
    const image = await detectImage(options.output, { signal });
    if (!image.ok) return image;
    if (image.value.format === 'sandbox') lowers = [image.value.path];
    else {
      const tree = await extractImageTree(image.value, store, signal);
      if (!tree.ok) return tree;
      lowers = [tree.value.root];
      remove = tree.value.remove;
    }
  }
  try {
    return await publishImage(ref, { client: options.client, store, lowers, architecture: IMAGE_ARCHITECTURE, ...(options.onBlob ? { onBlob: options.onBlob } : {}), signal });
  } finally {
    await remove?.();
  }
}
