import { join } from 'node:path';

/** The folder name of a project's state, beside its manifest. */
export const STATE_DIR_NAME = '.orchestrator';

/**
 * Every path under a project's `.orchestrator/` (docs/ARCHITECTURE.md, "Project state"). The one
 * place these names are written: other modules ask this object, never join them themselves.
 */
export class StateDir {
  /** The `.orchestrator/` folder itself. */
  readonly root: string;

  constructor(readonly projectDir: string) {
    this.root = join(projectDir, STATE_DIR_NAME);
  }

  /** `state.json`: each target's key, its parts and its output's identity (ProjectState). */
  get state(): string {
    return join(this.root, 'state.json');
  }

  /** `lock`: the pid of the one `up`/`clean` that owns the project (acquireProjectLock). */
  get lock(): string {
    return join(this.root, 'lock');
  }

  /** `stat-index.json`: content digests remembered by stat fields (StatIndex). */
  get statIndex(): string {
    return join(this.root, 'stat-index.json');
  }

  /** `witness.json`: the no-op witness (src/freshness/witness.ts). */
  get witness(): string {
    return join(this.root, 'witness.json');
  }

  /** `parsed.json`: the manifest and recipes as `up` last parsed them (parsed-cache.ts). */
  get parsed(): string {
    return join(this.root, 'parsed.json');
  }

  /** `logs/TARGET/`: every step's log of a target's last build. */
  logs(target: string): string {
    return join(this.root, 'logs', target);
  }

  /** `trees/TARGET.json`: the listing of a sandbox output as written, to name hand-made changes. */
  treeListing(target: string): string {
    return join(this.root, 'trees', `${target}.json`);
  }

  /**
   * `pending/TARGET.json`: present from just before a target's output is written until its record
   * is, so that an output a killed run finished but never recorded is still known as ours.
   */
  pending(target: string): string {
    return join(this.root, 'pending', `${target}.json`);
  }

  /** `journal/TARGET.json`: present while a sandbox output is being updated in place. */
  journal(target: string): string {
    return join(this.root, 'journal', `${target}.json`);
  }
}
