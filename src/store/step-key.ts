import { canonicalJson, sha256Digest, type Digest } from '../core/digest.js';

/**
 * Bumped whenever what a step produces for the same inputs changes (a new metadata layout, a
 * different %post environment): old snapshots are then simply not found. 2: SCIF apps get
 * scif/env/01-base.sh and labels.json, env files apply the user's --env after the image's own.
 */
export const CACHE_SCHEMA_VERSION = 2;

declare const stepKeyBrand: unique symbol;
/** sha256 of a step's canonical inputs (docs/ARCHITECTURE.md, Keys). Made only by stepKey(). */
export type StepKey = Digest & { readonly [stepKeyBrand]: true };

export type StepKind = 'source' | 'pre' | 'setup' | 'files' | 'post' | 'appfiles' | 'appinstall' | 'metadata';

/** What a step's key is made of. Kept with the key so that `plan` can say what changed. */
export interface StepKeyComponents {
  readonly parent: StepKey | null;
  readonly kind: StepKind;
  /** The section's text after templating, and its arguments (`-c /bin/bash`). */
  readonly text?: string;
  readonly args?: string;
  /** Build arguments the text uses, by name. */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** Digests of every file the step reads, by the path as written in the recipe/manifest. */
  readonly inputs?: Readonly<Record<string, string>>;
  /** Keys of other stages this step copies from (`%files from STAGE`). */
  readonly stages?: Readonly<Record<string, string>>;
  /** For a source: what identifies it (a manifest digest, a tree digest, debootstrap parameters). */
  readonly source?: unknown;
  /** SCIF app name for app steps. */
  readonly app?: string;
  readonly platform: string;
}

export function stepKey(components: StepKeyComponents): StepKey {
  return sha256Digest(canonicalJson({ schema: CACHE_SCHEMA_VERSION, ...components })) as StepKey;
}
