import { access, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { shortDigest, type Digest } from '../core/digest.js';
import { unreachable } from '../core/unreachable.js';
import { LOCK_FILE_NAME, readLockFile, withLockEntry, writeLockFile, type LockData } from '../lock/lock-file.js';
import { loadCredentials } from '../registry/credentials.js';
import { formatPlatform, parsePlatform, DEFAULT_PLATFORM } from '../registry/platform.js';
import { pullImage } from '../registry/pull-image.js';
import { formatReference, parseReference, withDigest, type ImageReference } from '../registry/reference.js';
import { RegistryClient } from '../registry/registry-client.js';
import type { RegistryEvent } from '../registry/registry-events.js';
import { formatBytes } from '../report/format-bytes.js';
import { Store } from '../store/store.js';
import { boolOption, stringOption, type ParsedArgs } from './args.js';
import { EXIT, type Command, type CommandContext, failWith } from './command.js';
import { FAKEROOT_OPTIONS } from './build-namespace.js';

export interface ProjectInfo {
  readonly dir: string;
  readonly manifest: string;
  /** The manifest's `cache.dir`, if it sets one. */
  readonly cacheDir?: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The project around a command: `-f FILE`, else `orchestrator.yaml` in `-C DIR` or the working
 * folder. Undefined outside a project. Only `cache.dir` is read here; validation is `validate`'s job.
 */
export async function findProject(ctx: CommandContext, file: string | undefined, dir: string | undefined): Promise<ProjectInfo | undefined | 'missing'> {
  const base = dir !== undefined ? resolve(ctx.cwd, dir) : ctx.cwd;
  const manifest = file !== undefined ? resolve(base, file) : join(base, 'orchestrator.yaml');
  if (!(await exists(manifest))) return file !== undefined ? 'missing' : undefined;
  let cacheDir: string | undefined;
  try {
    const { parse: parseYaml } = await import('yaml');
    const doc = parseYaml(await readFile(manifest, 'utf8')) as { cache?: { dir?: unknown } } | null;
    if (typeof doc?.cache?.dir === 'string') cacheDir = doc.cache.dir;
  } catch {
    // A broken manifest is reported by the commands that read it; pull only wants cache.dir.
  }
  return { dir: dirname(manifest), manifest, ...(cacheDir !== undefined ? { cacheDir } : {}) };
}

/** Renders registry events as plain progress lines (or one updating line on a terminal). */
export function progressPrinter(ctx: CommandContext): { onEvent: (e: RegistryEvent) => void; finish: () => void } {
  const tty = ctx.stderr.isTTY === true && ctx.env['CI'] === undefined;
  const blobs = new Map<string, { bytes: number; total: number; quarter: number }>();
  let lastDraw = 0;
  let drawn = false;
  const draw = (force: boolean): void => {
    const now = Date.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    let bytes = 0;
    let total = 0;
    for (const b of blobs.values()) {
      bytes += b.bytes;
      total += b.total;
    }
    ctx.stderr.write(`\r\u001b[2Kdownloading ${blobs.size} blob(s): ${formatBytes(bytes)} / ${formatBytes(total)}`);
    drawn = true;
  };
  const line = (text: string): void => {
    if (drawn) ctx.stderr.write('\r\u001b[2K');
    ctx.stderr.write(text + '\n');
    if (drawn) draw(true);
  };
  const onEvent = (e: RegistryEvent): void => {
    switch (e.type) {
      case 'manifest-resolved':
        line(`${e.reference}: ${e.digest} (${e.platform})${e.cached ? ' [cached]' : ''}`);
        return;
      case 'blob-start':
        blobs.set(e.digest, { bytes: 0, total: e.total, quarter: 0 });
        if (tty) draw(true);
        else line(`${shortDigest(e.digest)}: downloading ${formatBytes(e.total)}`);
        return;
      case 'blob-progress': {
        const b = blobs.get(e.digest);
        if (!b) return;
        b.bytes = e.bytes;
        if (tty) draw(false);
        else {
          const q = Math.floor((e.bytes / Math.max(1, e.total)) * 4);
          if (q > b.quarter && q < 4) {
            b.quarter = q;
            line(`${shortDigest(e.digest)}: ${formatBytes(e.bytes)} / ${formatBytes(e.total)}`);
          }
        }
        return;
      }
      case 'blob-resume':
        line(`${shortDigest(e.digest)}: resuming at ${formatBytes(e.offset)}`);
        return;
      case 'blob-done':
        if (!e.cached) line(`${shortDigest(e.digest)}: done ${formatBytes(e.total)}`);
        return;
      case 'retry':
        line(`retrying ${e.what} in ${(e.delayMs / 1000).toFixed(1)}s (attempt ${e.attempt}: ${e.reason})`);
        return;
      default:
        unreachable(e);
    }
  };
  return {
    onEvent,
    finish: () => {
      if (drawn) ctx.stderr.write('\r\u001b[2K');
    },
  };
}

/** Where a pull goes and what it asks for: the project around it, its store, and the reference with its lock pin. */
interface PullPlace {
  readonly store: Store;
  /** The reference to fetch: pinned to the lock's digest unless --pull or a digest was given. */
  readonly ref: ImageReference;
  /** Inside a project, for a tag: the lock file and what it holds now (to pin what was fetched). */
  readonly lockPath?: string;
  readonly lock?: LockData;
}

/** The project (-f/-C), the cache and the lock pin of `key` for a `pull` of `ref` (docker:// and oras:// alike). */
async function pullPlace(ctx: CommandContext, args: ParsedArgs, ref: ImageReference, key: string): Promise<Result<PullPlace, Diagnostic>> {
  const project = await findProject(ctx, stringOption(args, 'file'), stringOption(args, 'directory'));
  if (project === 'missing') {
    return fail(error('usage', `manifest '${stringOption(args, 'file')}' not found`, { hint: 'pass an existing orchestrator.yaml with -f, or leave -f out' }));
  }
  const store = await Store.open({ dir: stringOption(args, 'cache-dir') ?? project?.cacheDir, base: project?.dir ?? ctx.cwd, env: ctx.env });
  if (project === undefined || ref.digest !== undefined) return ok({ store, ref });
  const lockPath = join(project.dir, LOCK_FILE_NAME);
  const lock = await readLockFile(lockPath);
  if (!lock.ok) return lock;
  const pin = lock.value.images[key];
  return ok({ store, ref: pin && !boolOption(args, 'pull') ? withDigest(ref, pin.digest) : ref, lockPath, lock: lock.value });
}

/**
 * `pull oras://REG/REPO:TAG [FILE]`: the SIF artifact into the store (src/builder/oras-source.ts),
 * then copied to FILE (default NAME_TAG.sif, as Apptainer names it) atomically. Inside a project
 * the tag is pinned to the manifest digest in orchestrator.lock, like docker:// references.
 */
async function pullOras(ctx: CommandContext, text: string, fileArg: string | undefined, args: ParsedArgs): Promise<number> {
  const { parseOrasReference, formatOrasReference } = await import('../registry/oras.js');
  const parsed = parseOrasReference(text);
  if (!parsed.ok) return failWith(ctx, [parsed.error]);
  const key = formatOrasReference(parsed.value);
  const place = await pullPlace(ctx, args, parsed.value, key);
  if (!place.ok) return failWith(ctx, [place.error]);
  const { store, ref, lockPath, lock } = place.value;
  const last = parsed.value.repository.split('/').pop()!;
  const dest = resolve(ctx.cwd, fileArg ?? `${last}_${parsed.value.tag ?? 'latest'}.sif`);
  const client = new RegistryClient({ credentials: await loadCredentials({ env: ctx.env }), env: ctx.env });
  let result;
  try {
    const { fetchSif } = await import('../builder/oras-source.js');
    result = await fetchSif(ref, { client, store, signal: ctx.signal });
  } finally {
    await client.close();
  }
  if (!result.ok) return failWith(ctx, [result.error]);
  const sif = result.value;
  try {
    const { publishSif } = await import('../builder/oras-source.js');
    await publishSif(sif.blobPath, dest);
  } catch (e) {
    return failWith(ctx, [error('not-writable', `${dest}: ${(e as Error).message}`, { hint: 'pull to a folder you can write, or name another FILE' })]);
  }
  // Pinned as `up` and `lock` pin it: the manifest digest, for the default platform too.
  const plat = formatPlatform(DEFAULT_PLATFORM);
  if (lockPath !== undefined && lock !== undefined && (lock.images[key]?.digest !== sif.digest || lock.images[key]?.platforms[plat] !== sif.digest)) {
    await writeLockFile(lockPath, withLockEntry(lock, key, sif.digest, plat, sif.digest));
  }
  if (!boolOption(args, 'quiet')) {
    ctx.stderr.write(`pulled ${key} to ${dest}: SIF ${formatBytes(sif.size)}${sif.downloaded ? ' downloaded' : ' [cached]'}\n`);
  }
  ctx.stdout.write(`${sif.digest}\n`);
  return EXIT.ok;
}

export const command: Command = {
  spec: {
    name: 'pull',
    summary: 'fetch and verify an image into the cache',
    usage: 'docker://REF | oras://REF [FILE] [--platform OS/ARCH[/VARIANT]] [--pull] [-f FILE | -C DIR]',
    description:
      'Resolves the reference (an index to the platform\'s image), downloads and verifies every blob into the cache and prints the manifest digest.\n' +
      'Inside a project (orchestrator.yaml), tags are pinned to digests in orchestrator.lock; an existing pin is used unless --pull is given.\n' +
      'oras://REF fetches a SIF image (as apptainer push writes it), verifies it and copies it to FILE (default NAME_TAG.sif).',
    options: [
      { name: 'platform', type: 'string', value: 'OS/ARCH[/VARIANT]', description: 'platform to pick from a multi-platform image (default linux/amd64)' },
      { name: 'pull', type: 'boolean', description: 'resolve the tag again instead of using the pin in orchestrator.lock' },
      { name: 'file', short: 'f', type: 'string', value: 'FILE', description: 'the project manifest (default orchestrator.yaml)' },
      { name: 'directory', short: 'C', type: 'string', value: 'DIR', description: 'run as if started in DIR' },
      { name: 'cache-dir', type: 'string', value: 'DIR', description: 'the cache folder (default $ORCHESTRATOR_CACHE, $XDG_CACHE_HOME/orchestrator)' },
      { name: 'quiet', short: 'q', type: 'boolean', description: 'no progress output' },
      ...FAKEROOT_OPTIONS,
    ],
    positionals: { min: 1, max: 2 },
  },
  async run(ctx, args) {
    const text = args.positionals[0]!;
    if (text.startsWith('oras://')) return pullOras(ctx, text, args.positionals[1], args);
    if (args.positionals.length > 1) {
      return failWith(ctx, [error('usage', `unexpected argument '${args.positionals[1]}'`, { hint: 'a FILE is for oras:// SIF images; docker:// images are pulled into the cache' })]);
    }
    const parsed = parseReference(text);
    if (!parsed.ok) {
      return failWith(ctx, [parsed.error]);
    }
    const platformText = stringOption(args, 'platform');
    let platform = DEFAULT_PLATFORM;
    if (platformText !== undefined) {
      const p = parsePlatform(platformText);
      if (!p.ok) {
        return failWith(ctx, [p.error]);
      }
      platform = p.value;
    }
    const key = formatReference(parsed.value);
    const place = await pullPlace(ctx, args, parsed.value, key);
    if (!place.ok) {
      return failWith(ctx, [place.error]);
    }
    const { store, ref, lockPath, lock } = place.value;

    const quiet = boolOption(args, 'quiet');
    const progress = progressPrinter(ctx);
    const client = new RegistryClient({ credentials: await loadCredentials({ env: ctx.env }), env: ctx.env });
    let result;
    try {
      result = await pullImage(ref, {
        store,
        client,
        platform,
        signal: ctx.signal,
        ...(quiet ? {} : { onEvent: progress.onEvent }),
      });
    } finally {
      progress.finish();
      await client.close();
    }
    if (!result.ok) {
      return failWith(ctx, [result.error]);
    }
    const image = result.value;
    if (lockPath !== undefined && lock !== undefined) {
      const top: Digest = image.indexDigest ?? image.digest;
      const prev = lock.images[key];
      const plat = formatPlatform(platform);
      if (!prev || prev.digest !== top || prev.platforms[plat] !== image.digest) {
        await writeLockFile(lockPath, withLockEntry(lock, key, top, plat, image.digest));
      }
    }
    if (!quiet) {
      const n = image.layers.length;
      ctx.stderr.write(
        `pulled ${formatReference(parsed.value)}: ${n} layer${n === 1 ? '' : 's'}, ${formatBytes(image.downloadedBytes)} downloaded, ${image.cachedBlobs} blob(s) cached\n`,
      );
    }
    ctx.stdout.write(`${image.digest}\n`);
    return EXIT.ok;
  },
};
