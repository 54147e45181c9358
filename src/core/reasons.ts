/**
 * Every `Diagnostic.reason` there is, in one list, grouped by kind. The kind says what went wrong
 * in a way a command can act on: the exit status comes from it (src/cli/command.ts, exitCodeOf),
 * never from comparing reason strings at each call site.
 *
 * TO ADD A REASON: put the new kebab-case literal in the group of its kind below (a new group
 * only for a new kind, and then give the kind an exit status in exitCodeOf). The type check then
 * accepts it everywhere `error(...)` is called. A reason means one thing: when the same words would
 * fit two kinds (a manifest file not found, an image manifest not found on a registry), give them
 * two names.
 */
export const REASONS = {
  /** The command line is wrong: an option, a value, a combination. Exit 2. */
  usage: ['usage'],

  /** orchestrator.yaml (and orchestrator.lock beside it) is missing, unreadable or wrong. Exit 2. */
  manifest: [
    'manifest-not-found',
    'manifest-empty',
    'manifest-yaml',
    'manifest-duplicate-key',
    'manifest-version',
    'manifest-type',
    'manifest-missing-key',
    'manifest-unknown-key',
    'manifest-unsupported-key',
    'manifest-empty-value',
    'manifest-invalid-value',
    'manifest-invalid-name',
    'manifest-invalid-size',
    'manifest-invalid-source',
    'manifest-missing-source',
    'manifest-missing-format',
    'manifest-format-mismatch',
    'manifest-size-not-ext3',
    'manifest-squashfs-not-squashfs',
    'manifest-squashfs-option',
    'manifest-invalid-push',
    'manifest-cycle',
    'manifest-duplicate-output',
    'manifest-name-conflict',
    'manifest-unknown-target',
    'manifest-unknown-group-member',
    'manifest-output-inside-sandbox',
    'manifest-output-contains-project',
    'manifest-output-system-folder',
    'manifest-output-outside-project',
    'manifest-output-overwrites-source',
    'manifest-recipe-not-found',
    'manifest-recipe-not-a-file',
    'manifest-unset-variable',
    'manifest-invalid-set',
    'manifest-duplicate-target',
    'manifest-unknown-parent',
    'manifest-args-file-not-found',
    'manifest-args-file-syntax',
    'manifest-matrix-empty',
    'bad-lock-file',
  ],

  /** A definition file (recipe) is unreadable or wrong. Exit 2. */
  recipe: [
    'recipe-unreadable',
    'recipe-empty',
    'recipe-nul-byte',
    'recipe-no-source',
    'recipe-missing-header',
    'recipe-header-missing',
    'recipe-header-syntax',
    'recipe-unknown-header',
    'recipe-unknown-agent',
    'recipe-agent-unsupported',
    'recipe-unknown-section',
    'recipe-unknown-stage',
    'recipe-duplicate-stage',
    'recipe-app-name-missing',
    'recipe-files-args',
    'recipe-files-syntax',
    'recipe-files-extra-words',
    'recipe-arguments-syntax',
    'recipe-argument-newline',
    'recipe-undefined-argument',
    'debootstrap-bad-include',
    'debootstrap-bad-mirror',
    'debootstrap-bad-suite',
    'debootstrap-no-mirror',
  ],

  /**
   * What the command line or a recipe names cannot be used: an image reference, a platform, a
   * target or group, an image file or folder, a bind or home folder, an output. Exit 2.
   */
  reference: [
    'bad-reference',
    'bad-platform',
    'unknown-target',
    'image-target-unknown',
    'image-target-no-manifest',
    'image-target-unsupported',
    'image-not-found',
    'image-unreadable',
    'image-unrecognized',
    'image-truncated',
    'image-unsupported',
    'image-not-sif',
    'image-immutable',
    'image-writable-needs-root',
    'sif-bad-magic',
    'sif-bad-version',
    'sif-truncated',
    'sif-object-out-of-bounds',
    'sif-objects-overlap',
    'sif-unknown-type',
    'sif-no-partition',
    'sif-encrypted',
    'sif-not-signed',
    'sif-signature-invalid',
    'sif-integrity',
    'sif-bad-key',
    'bind-invalid',
    'bind-target-in-bind',
    'bind-source-not-found',
    'home-not-found',
    'app-not-found',
    'instance-not-found',
    'instance-exists',
    'env-file-not-found',
    'env-file-invalid',
    'source-not-found',
    'output-exists',
    'build-output-overlaps-source',
  ],

  /** A build did not succeed: a step, a tool, a source, the project's state. Exit 1. */
  build: [
    'step-failed',
    'step-start-failed',
    'tool-failed',
    'tool-missing',
    'squashfs-writer-unsupported',
    'squashfs-layers-unmergeable',
    'no-source',
    'files-source-missing',
    'files-destination-invalid',
    'input-changed-during-build',
    'sandbox-modified',
    'ext3-too-small',
    'bad-image-layout',
    'project-locked',
    'cache-busy',
    'watch-failed',
    'files-copy-failed',
    'needs-root',
    'userns-disabled',
    'userns-failed',
    'no-subordinate-ids',
    'no-newuidmap',
    'single-id-owners',
    'cache-not-safe',
    'device-files-skipped',
    'output-not-ours',
    'output-in-use',
    'no-space',
    'read-only',
    'not-writable',
    'system-error',
  ],

  /** Pulling from a registry, unpacking layers, the content store. Exit 1. */
  registry: [
    'registry-error',
    'registry-unavailable',
    'registry-manifest-not-found',
    'manifest-digest-mismatch',
    'auth-required',
    'auth-failed',
    'access-denied',
    'blob-not-found',
    'blob-size-mismatch',
    'digest-mismatch',
    'diffid-mismatch',
    'bad-manifest',
    'bad-image-config',
    'unsupported-manifest',
    'unsupported-compression',
    'platform-not-found',
    'layer-corrupt',
    'layer-read-failed',
    'layer-write-failed',
    'layer-unsupported-entry',
    'layer-unsafe-path',
    'layer-unsafe-link',
    'layer-unsafe-device',
    'oras-wrong-media-type',
    'oras-not-sif',
  ],

  /** Running a container or mounting an image failed. Exit 1. */
  runtime: ['session-dir-unavailable', 'starter-missing', 'starter-failed', 'mount-failed', 'overlay-bad-stack', 'image-not-a-file', 'image-extract-failed', 'instance-start-failed', 'instance-stop-failed', 'instance-join-failed'],

  /** Ctrl-C (SIGINT) or SIGTERM stopped the work. Exit 130. */
  interrupted: ['interrupted', 'aborted'],

  /** Something that should not happen did: a bug, reported as a value where it was caught. Exit 1. */
  internal: ['unexpected'],
} as const;

export type ReasonKind = keyof typeof REASONS;
export type Reason = (typeof REASONS)[ReasonKind][number];

const KIND_OF: ReadonlyMap<string, ReasonKind> = new Map(
  (Object.keys(REASONS) as ReasonKind[]).flatMap((kind) => REASONS[kind].map((reason): [string, ReasonKind] => [reason, kind])),
);

/** The kind of a reason. */
export function reasonKind(reason: Reason): ReasonKind {
  return KIND_OF.get(reason) ?? 'internal';
}
