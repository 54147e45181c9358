import { mkdir, readFile, rm } from 'node:fs/promises';
import { writeFileAtomic } from '../core/fs-atomic.js';
import type { TargetComponents } from '../freshness/fingerprint.js';
import { StateDir } from './state-dir.js';
import { nameTable, ownValue } from '../core/name-table.js';

/** How an output is recognised as the one we wrote (docs/ARCHITECTURE.md, Freshness). */
export type OutputIdentity =
  | { readonly kind: 'file'; readonly size: number; readonly mtimeMs: number; readonly ino: number }
  | { readonly kind: 'tree'; readonly digest: string };

export interface TargetRecord {
  readonly key: string;
  readonly components: TargetComponents;
  readonly output: string;
  readonly identity: OutputIdentity;
  readonly builtAt: string;
  /** Keys of the steps of the last build (for `cache prune`: what this project still uses). */
  readonly steps: readonly string[];
  /** Store entries the output is made of (absolute paths): `cache prune` keeps them. */
  readonly references?: readonly string[];
  /** The image's overlay stack (top first), for updating a sandbox output in place next time. */
  readonly lowers?: readonly string[];
  /**
   * What `up` pushed of this target (its `push:` entries), by destination (`REG/REPO:TAG`,
   * canonical): the target key pushed, the manifest digest, when. Written only after a push
   * succeeded, and kept across builds: a destination whose key differs from `key` is pushed again.
   */
  readonly pushed?: Readonly<Record<string, PushRecord>>;
}

export interface PushRecord {
  readonly key: string;
  readonly digest: string;
  readonly at: string;
}

export interface ProjectStateData {
  readonly version: 1;
  readonly targets: Readonly<Record<string, TargetRecord>>;
}

/**
 * `.orchestrator/state.json`: what was built, from what, and how to recognise its output. Written
 * atomically after the outputs, so a crash can make a target look stale, never falsely fresh.
 */
export class ProjectState {
  #data: { version: 1; targets: Record<string, TargetRecord> };
  #saving: Promise<void> = Promise.resolve();

  private constructor(
    readonly paths: StateDir,
    data: ProjectStateData,
  ) {
    this.#data = { version: 1, targets: nameTable(Object.entries(data.targets)) };
  }

  /** Loads the state; a missing or unreadable file is an empty state (everything is stale). */
  static async load(projectDir: string): Promise<ProjectState> {
    const paths = new StateDir(projectDir);
    try {
      const data = JSON.parse(await readFile(paths.state, 'utf8')) as ProjectStateData;
      if (data.version === 1 && typeof data.targets === 'object') return new ProjectState(paths, data);
    } catch {
      // Start empty.
    }
    return new ProjectState(paths, { version: 1, targets: {} });
  }

  get(name: string): TargetRecord | undefined {
    return ownValue(this.#data.targets, name);
  }

  names(): string[] {
    return Object.keys(this.#data.targets);
  }

  async set(name: string, record: TargetRecord): Promise<void> {
    this.#data.targets[name] = record;
    await this.save();
  }

  /** Records a push of the target's current record (its key) to `destination`; no record, nothing done. */
  async setPushed(name: string, destination: string, push: PushRecord): Promise<void> {
    const record = this.get(name);
    if (!record) return;
    this.#data.targets[name] = { ...record, pushed: { ...record.pushed, [destination]: push } };
    await this.save();
  }

  async remove(name: string): Promise<void> {
    delete this.#data.targets[name];
    await rm(this.paths.treeListing(name), { force: true });
    await this.save();
  }

  /** Saves are serialised: targets finishing together must not overwrite each other's record. */
  save(): Promise<void> {
    const next = this.#saving.then(() => this.#write());
    this.#saving = next.catch(() => undefined);
    return next;
  }

  async #write(): Promise<void> {
    await mkdir(this.paths.root, { recursive: true });
    const sorted = Object.fromEntries(Object.entries(this.#data.targets).sort(([a], [b]) => (a < b ? -1 : 1)));
    await writeFileAtomic(this.paths.state, JSON.stringify({ version: 1, targets: sorted }, null, 2) + '\n');
  }
}
