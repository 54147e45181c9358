import type { SourceLocation } from '../core/diagnostic.js';
import type { SquashfsOptions } from './squashfs-options.js';

/**
 * The validated model of an orchestrator.yaml (docs/ARCHITECTURE.md, Manifest and recipes). Everything here has passed the
 * schema and the semantic checks; every path is absolute; every field keeps where it was written so
 * that later errors (recipes, builds) can point at the manifest's text.
 */
export interface Project {
  /** Absolute path of the manifest file. */
  readonly file: string;
  /** Absolute path of the folder holding the manifest; relative paths in it are relative to this. */
  readonly dir: string;
  /** The manifest format version (1). */
  readonly version: 1;
  /** The `cache.dir` setting, absolute (`~/` expanded), when the manifest gives one. */
  readonly cacheDir?: string;
  /** `cache.remote` (a registry repository, as written) and `cache.push`, when the manifest gives a remote step cache. */
  readonly cacheRemote?: { readonly repository: string; readonly push: boolean };
  /** `outputs.outside`: folders outside the project where outputs may be written, absolute (`~/` expanded). */
  readonly outputsOutside?: readonly string[];
  /** Top-level build arguments, values as text (`3.12`, `true`). */
  readonly args: Readonly<Record<string, string>>;
  /** Targets in the order the file lists them. */
  readonly targets: readonly Target[];
  /** Groups as written: members are target or group names (all known; no cycles). */
  readonly groups: readonly Group[];
  /** Where top-level fields were written (`version`, `cache.dir`, `args.NAME`, ...). */
  readonly locations: ProjectLocations;
  /** What the manifest read besides its text, when it read anything: a cached parse holds only while these are the same. */
  readonly expansion?: ProjectExpansion;
}

/** What besides the manifest's text went into the targets (docs/ARCHITECTURE.md, Manifest and recipes). */
export interface ProjectExpansion {
  /** Each environment variable `${NAME}` read, with its value (null: unset). */
  readonly env: Readonly<Record<string, string | null>>;
  /** Absolute paths of the `args_file`s read. */
  readonly argsFiles: readonly string[];
  /** The `--set` values, as given. */
  readonly set: readonly string[];
}

/** What made a target that is not written out plainly: a matrix, parents, args files, variables, --set. */
export interface TargetOrigin {
  /** The target as written (for a matrix variant, the base name). */
  readonly base: string;
  /** The matrix values of this variant. */
  readonly matrix?: Readonly<Record<string, string>>;
  /** The templates and targets it inherits from, nearest first. */
  readonly inherits?: readonly string[];
  /** The args files it took args from, as written. */
  readonly argsFiles?: readonly string[];
  /** The environment variables its values read. */
  readonly env?: readonly string[];
  /** The keys `--set` gave it (`format`, `args.PY`). */
  readonly set?: readonly string[];
}

export interface ProjectLocations {
  /** The whole manifest (line 1), for errors about the file as such. */
  readonly file: SourceLocation;
  readonly version?: SourceLocation;
  readonly cacheDir?: SourceLocation;
  readonly cacheRemote?: SourceLocation;
  /** Each top-level arg's value. */
  readonly args: Readonly<Record<string, SourceLocation>>;
}

export type Format = 'sandbox' | 'ext3' | 'squashfs' | 'sif';

export const FORMATS: readonly Format[] = ['sandbox', 'ext3', 'squashfs', 'sif'];

/** Where an image starts (`from:`), parsed. `text` is the value as written. */
export type SourceRef =
  | { readonly kind: 'docker'; readonly text: string; /** `ubuntu:24.04`, `ghcr.io/x/y@sha256:...` */ readonly ref: string }
  | { readonly kind: 'oras'; readonly text: string; /** A SIF image in a registry: `127.0.0.1:5000/team/box:v1` */ readonly ref: string }
  | { readonly kind: 'oci'; readonly text: string; /** Absolute OCI layout folder. */ readonly dir: string; readonly tag?: string }
  | { readonly kind: 'oci-archive'; readonly text: string; /** Absolute path of the archive. */ readonly file: string }
  | { readonly kind: 'docker-archive'; readonly text: string; /** Absolute path of the archive. */ readonly file: string }
  | { readonly kind: 'target'; readonly text: string; /** Name of another target in this manifest. */ readonly target: string }
  | { readonly kind: 'path'; readonly text: string; /** Absolute path of an image file or folder. */ readonly path: string };

export type SourceKind = SourceRef['kind'];

export interface Target {
  readonly name: string;
  /** Absent when the recipe's Bootstrap header says where to start. */
  readonly from?: SourceRef;
  /** Absolute path of the Singularity definition file (it existed when the manifest was loaded). */
  readonly recipe?: string;
  readonly format: Format;
  /** Absolute path. A sandbox output is a folder and has no trailing slash here. */
  readonly output: string;
  /** Whether `output` was written in the manifest (false: the default build/NAME...). */
  readonly outputGiven: boolean;
  /** ext3 image size in bytes, when given. */
  readonly size?: number;
  /** How the squashfs image is written (format squashfs only; defaults filled in). */
  readonly squashfs?: SquashfsOptions;
  /** The target's own build arguments merged over the top-level ones, values as text. */
  readonly args: Readonly<Record<string, string>>;
  /** Further inputs as written (paths or globs relative to the project folder). */
  readonly inputs: readonly string[];
  /** Run the recipe's %test after the build (default true). */
  readonly test: boolean;
  /** `push:` tags `up` publishes the output to (parsed, `docker://` only), in order; absent or empty when none. */
  readonly push?: readonly PushDestination[];
  /** What made it, when it is not written out plainly (a matrix variant, inherits, variables). */
  readonly origin?: TargetOrigin;
  /** The names of targets this one is built from (`from: target:X`); at most one for now. */
  readonly dependencies: readonly string[];
  readonly locations: TargetLocations;
}

/** Where each field of a target was written: the value's text (for `name`, the key). */
export interface TargetLocations {
  readonly name: SourceLocation;
  readonly from?: SourceLocation;
  readonly recipe?: SourceLocation;
  readonly format?: SourceLocation;
  readonly output?: SourceLocation;
  readonly size?: SourceLocation;
  /** The `squashfs:` mapping. */
  readonly squashfs?: SourceLocation;
  readonly test?: SourceLocation;
  /** Each `push` entry (same order as Target.push). */
  readonly push?: readonly SourceLocation[];
  /** Each input's entry. */
  readonly inputs: readonly SourceLocation[];
  /** Each target-level arg's value. */
  readonly args: Readonly<Record<string, SourceLocation>>;
}

/** One `push:` entry: the reference as written (`docker://REG/REPO:TAG`), and the same without the scheme. */
export interface PushDestination {
  readonly text: string;
  /** `REG/REPO:TAG`, canonical (the registry and repository as the registry client names them). */
  readonly ref: string;
}

export interface Group {
  readonly name: string;
  /** Made by a matrix target: its base name stands for all its variants. */
  readonly matrix?: true;
  /** Target or group names, as written. */
  readonly members: readonly string[];
  readonly locations: { readonly name: SourceLocation; readonly members: readonly SourceLocation[] };
}
