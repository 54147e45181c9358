import { chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { detectImage, type DetectedImage } from '../image/detect-image.js';
import { toolFailure } from '../image/tool-failure.js';
import type { StatIndex } from '../freshness/stat-index.js';
import { fileSha256, treeIdentity } from '../freshness/tree-digest.js';
import type { Store } from '../store/store.js';
import type { ImageConfig } from './image-config.js';
import { ROOT_SKELETON } from './singularity-metadata.js';
import { runStepSession } from './step-session.js';
import { writeTreeEntry } from './tree-entry.js';
import { extractImageInNamespace, foldedTree, type FoldedTree } from './fold-owners.js';
import { inChildUserNamespace, singleIdNamespace } from '../core/id-map.js';
import { digestHex } from '../core/digest.js';
import { unpackWarnings } from '../layers/unpack-layer.js';

/**
 * A source as Singularity's labels name it (`Bootstrap: docker`, `From: debian:bookworm`): set on a
 * manifest `from:`, which takes the place of the recipe header's source, so that the image's
 * provenance labels say what was used (singularity-metadata.ts).
 */
export interface SourceOrigin {
  readonly bootstrap: string;
  readonly from: string;
}

/** Where a build starts from, after resolution (`from`, else the recipe's Bootstrap header; docs/ARCHITECTURE.md, Manifest and recipes). */
export type SourceSpec = (
  | { readonly kind: 'scratch' }
  /** A sandbox folder or an image file (localimage, or another target's output). */
  | { readonly kind: 'local'; readonly path: string }
  /** Already resolved by a registry or OCI reader into unpacked layers. */
  | {
      readonly kind: 'layers';
      readonly key: unknown;
      readonly layers: readonly string[];
      readonly config?: ImageConfig;
      readonly description: string;
      /** Store paths the source keeps using (the registry blobs of its layers), for `cache prune`. */
      readonly blobs?: readonly string[];
      /** What unpacking it in a user namespace changed (unpackWarnings). */
      readonly warnings?: readonly Diagnostic[];
    }
) & { readonly origin?: SourceOrigin };

/** A source ready to be the bottom of an overlay stack. */
export interface PreparedSource {
  /** What identifies it in step keys: a manifest digest, a tree digest, a file digest. */
  readonly key: unknown;
  /** Overlay-format folders, top first. */
  readonly lowers: readonly string[];
  readonly config?: ImageConfig;
  readonly description: string;
  /** Further store paths the source uses (registry blobs). */
  readonly blobs?: readonly string[];
  /** Said once when the source is ready (unpackWarnings). */
  readonly warnings?: readonly Diagnostic[];
}

/** Bump when the scratch root's content changes: it is part of every scratch build's key. */
const SCRATCH_ROOT_VERSION = 1;

/**
 * The root a `scratch` build starts from, made once in the store: the folders and files Apptainer
 * makes before `%setup` runs (makeBaseEnv: /etc, /dev, /proc, /sys, /root, /tmp, /var/tmp,
 * /home, an empty /etc/hosts and /etc/resolv.conf), with ROOT_SKELETON's modes, so that a
 * `%setup` may write `$APPTAINER_ROOTFS/etc/passwd` at once. Published by rename.
 */
async function scratchRoot(store: Store): Promise<string> {
  const dest = join(store.snapshotsDir, `scratch-root-v${SCRATCH_ROOT_VERSION}`);
  if (await stat(dest).then(() => true, () => false)) return dest;
  const tmp = await store.makeTempDir('scratch');
  const root = join(tmp, 'root');
  try {
    await mkdir(root);
    await chmod(root, 0o755);
    for (const e of ROOT_SKELETON) await writeTreeEntry(join(root, e.path), e);
    await mkdir(store.snapshotsDir, { recursive: true });
    try {
      await rename(root, dest);
    } catch (e) {
      // Another build made it first: the same content.
      if (!['EEXIST', 'ENOTEMPTY'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    }
    return dest;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The root of an image file, unpacked once into the store by the kernel's own reading of it (a
 * loop mount in a private session, then `cp -a`), keyed by the file's digest: owners, modes,
 * setuid bits, devices and xattrs are kept exactly. In a user namespace (a build without root),
 * which has no loop devices, it is extracted instead (extractImageInNamespace): in single-id mode
 * owners become 0, and device files are left out, which the counts say.
 */
async function unpackImageFile(image: DetectedImage, sha: string, store: Store, signal?: AbortSignal): Promise<Result<FoldedTree, Diagnostic>> {
  const dest = store.snapshotPath(`image-${sha}`);
  if (await stat(dest).then(() => true, () => false)) return ok({ path: dest, ownersFolded: 0, devicesSkipped: 0 });
  const tmp = await store.makeTempDir('image');
  const session = join(tmp, 'session');
  const out = join(tmp, 'root');
  try {
    let counts = { ownersFolded: 0, devicesSkipped: 0 };
    if (inChildUserNamespace()) {
      const extracted = await extractImageInNamespace(image, out, signal);
      if (!extracted.ok) return extracted;
      counts = extracted.value;
    } else {
      const unpacked = await cpFromImage(image, session, out, signal);
      if (unpacked) return fail(unpacked);
    }
    await rm(join(out, 'lost+found'), { recursive: true, force: true }).catch(() => undefined);
    try {
      await rename(out, dest);
    } catch (e) {
      // Another build unpacked the same image first: theirs is as good as ours.
      if (!['EEXIST', 'ENOTEMPTY'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    }
    return ok({ path: dest, ...counts });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** As root: the image loop-mounted in a private session, copied out with `cp -a`; a failure, or undefined. */
async function cpFromImage(image: DetectedImage, session: string, out: string, signal?: AbortSignal): Promise<Diagnostic | undefined> {
  await mkdir(session);
  await mkdir(out);
  const outcome = await runStepSession({
    ops: [
      { op: 'session', target: session, data: 'size=1m,mode=0755' },
      { op: 'mkdir', path: join(session, 'img') },
      { op: 'image', type: image.format === 'ext3' ? 'ext3' : 'squashfs', file: image.path, offset: image.offset, target: join(session, 'img'), writable: false },
    ],
    command: ['cp', '-a', `${join(session, 'img')}/.`, out],
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    ...(signal ? { signal } : {}),
  });
  return toolFailure('cp', `unpacking ${image.path}`, outcome);
}

/** The warnings of a local source copied in single-id mode, as a PreparedSource field. */
function said(tree: FoldedTree, source: string): { warnings?: readonly Diagnostic[] } {
  const warnings = unpackWarnings([tree], source);
  return warnings.length > 0 ? { warnings } : {};
}

export async function prepareSource(
  source: SourceSpec,
  options: { store: Store; index?: StatIndex; cwd?: string; signal?: AbortSignal },
): Promise<Result<PreparedSource, Diagnostic>> {
  switch (source.kind) {
    case 'scratch':
      return ok({ key: { scratch: SCRATCH_ROOT_VERSION }, lowers: [await scratchRoot(options.store)], description: 'scratch' });
    case 'layers':
      return ok({
        key: source.key,
        lowers: source.layers,
        ...(source.config ? { config: source.config } : {}),
        description: source.description,
        ...(source.blobs ? { blobs: source.blobs } : {}),
        ...(source.warnings && source.warnings.length > 0 ? { warnings: source.warnings } : {}),
      });
    case 'local': {
      const detected = await detectImage(source.path, { ...(options.cwd ? { cwd: options.cwd } : {}) });
      if (!detected.ok) return detected;
      const image = detected.value;
      const hashOptions = { ...(options.index ? { index: options.index } : {}), ...(options.signal ? { signal: options.signal } : {}) };
      if (image.format === 'sandbox') {
        const tree = await treeIdentity(image.path, hashOptions);
        if (!singleIdNamespace()) return ok({ key: { tree: tree.digest }, lowers: [image.path], description: image.path });
        const folded = await foldedTree(image.path, digestHex(tree.digest), options.store);
        if (!folded.ok) return folded;
        return ok({ key: { tree: tree.digest }, lowers: [folded.value.path], description: image.path, ...said(folded.value, image.path) });
      }
      const sha = await fileSha256(image.path, hashOptions);
      const root = await unpackImageFile(image, sha, options.store, options.signal);
      if (!root.ok) return root;
      return ok({ key: { image: `sha256:${sha}` }, lowers: [root.value.path], description: image.path, ...said(root.value, image.path) });
    }
    default: {
      const never: never = source;
      return fail(error('unexpected', `unknown source ${JSON.stringify(never)}`));
    }
  }
}
