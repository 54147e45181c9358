import { join } from 'node:path';
import { isGlob } from '../core/is-glob.js';
import { nativeAddon } from '../native/addon.js';

/** native TREE_STAT_FOLLOW_ROOT and TREE_STAT_SHALLOW. */
export const FOLLOW = 1;
export const SHALLOW = 2;

/**
 * What one run read, as the identity functions (tree-digest.ts) and the executor report
 * it: paths whose whole tree matters, and folders whose list of names matters (a glob's folder).
 */
export class ReadSet {
  readonly trees = new Set<string>();
  readonly listings = new Set<string>();
  /**
   * Trees whose signature the run took itself, before it read them (treeIdentity, without
   * following a symlink root): the witness keeps that signature instead of taking another.
   */
  readonly signed = new Map<string, { readonly signature: string; readonly newestCtimeMs: number; readonly coarse: boolean }>();
  /** Why no witness can be made of this run, when something was read that signatures cannot cover. */
  unwitnessable: string | undefined;

  add(path: string): void {
    this.trees.add(path);
  }

  addSigned(path: string, sig: { readonly signature: string; readonly newestCtimeMs: number; readonly coarse: boolean }): void {
    this.signed.set(path, { signature: sig.signature, newestCtimeMs: sig.newestCtimeMs, coarse: sig.coarse });
  }

  /**
   * A glob expanded in `baseDir`: the folder it lists must keep its names. A glob whose wildcards
   * are not all in its last part lists folders that cannot be named here, so it makes the run
   * unwitnessable (such runs always take the full check).
   */
  addGlob(baseDir: string, pattern: string): void {
    const parts = pattern.split('/');
    if (parts.slice(0, -1).some(isGlob)) {
      this.unwitnessable = `the glob ${pattern} has wildcards in a folder part`;
      return;
    }
    this.listings.add(join(pattern.startsWith('/') ? '/' : baseDir, ...parts.slice(0, -1)));
  }
}

/** Signatures of many paths (native witness(), see native/addon/README.md), in two jobs so that two cores walk. */
export async function signatures(paths: readonly string[], flags: Uint8Array): Promise<{ signatures: string[]; newestCtimeMs: number; coarse: boolean }> {
  const addon = nativeAddon();
  const half = Math.ceil(paths.length / 2);
  const parts = await Promise.all([addon.witness(paths.slice(0, half), flags.subarray(0, half)), addon.witness(paths.slice(half), flags.subarray(half))]);
  return { signatures: parts.flatMap((p) => p.signatures), newestCtimeMs: Math.max(...parts.map((p) => p.newestCtimeMs)), coarse: parts.some((p) => p.coarse) };
}
