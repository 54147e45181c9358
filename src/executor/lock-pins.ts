import type { TagPins } from '../builder/registry-source.js';
import type { Digest } from '../core/digest.js';
import { withLockEntry, writeLockFile, type LockData } from '../lock/lock-file.js';
import type { Platform } from '../registry/media-types.js';
import { formatPlatform } from '../registry/platform.js';

/** Pins kept in memory during a run and written to orchestrator.lock as they change. */
export class LockPins implements TagPins {
  #writing: Promise<void> = Promise.resolve();
  constructor(
    public lock: LockData,
    readonly path: string,
    readonly ignoreExisting: boolean,
    /** A dry run's pins: what it resolves is used, never written to orchestrator.lock. */
    readonly readOnly = false,
  ) {}
  get(reference: string): Digest | undefined {
    if (this.ignoreExisting) return undefined;
    return this.lock.images[reference]?.digest;
  }
  record(reference: string, top: Digest, platform: Platform, manifest: Digest): void {
    const prev = this.lock.images[reference];
    const plat = formatPlatform(platform);
    if (prev && prev.digest === top && prev.platforms[plat] === manifest) return;
    this.lock = withLockEntry(this.lock, reference, top, plat, manifest);
    if (this.readOnly) return;
    const snapshot = this.lock;
    this.#writing = this.#writing.then(() => writeLockFile(this.path, snapshot)).catch(() => undefined);
  }
  flush(): Promise<void> {
    return this.#writing;
  }
}
