import { error } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { formatBytes } from '../report/format-bytes.js';
import { Store, type StoreEntryKind } from '../store/store.js';
import { boolOption, stringOption } from './args.js';
import { EXIT, type Command, failWith } from './command.js';
import { findProject } from './pull.js';
import { parseSize } from '../manifest/parse-size.js';
import { pruneStore } from '../store/prune-store.js';
import { ProjectState } from '../state/project-state.js';
import type { ParsedArgs } from './args.js';
import type { CommandContext } from './command.js';
import { FAKEROOT_OPTIONS } from './build-namespace.js';

const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `30m`, `12h`, `7d`, `2w` in milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)([smhdw])$/.exec(text);
  return m ? Number(m[1]) * UNITS[m[2]!]! : undefined;
}

/**
 * Store paths the last build of every registered project uses, and the earliest time from which
 * their squashfs exports marked the block cache entries they used.
 */
async function referencedPaths(store: Store): Promise<{ referenced: Set<string>; blocksUsedSince?: number }> {
  const referenced = new Set<string>();
  let blocksUsedSince: number | undefined;
  for (const p of await store.projects()) {
    // A project or state that is gone loads as empty: it keeps nothing.
    const state = await ProjectState.load(p.dir);
    for (const name of state.names()) {
      const t = state.get(name)!;
      for (const r of t.references ?? []) {
        const since = store.blockUseSince(r);
        if (since !== undefined) blocksUsedSince = Math.min(since, blocksUsedSince ?? since);
        else referenced.add(r);
      }
      for (const k of t.steps) referenced.add(store.snapshotPath(k));
    }
  }
  return { referenced, ...(blocksUsedSince !== undefined ? { blocksUsedSince } : {}) };
}

async function prune(ctx: CommandContext, args: ParsedArgs, store: Store, json: boolean): Promise<number> {
  const olderText = stringOption(args, 'older-than');
  const keepText = stringOption(args, 'keep-bytes');
  const olderThanMs = olderText === undefined ? undefined : parseDuration(olderText);
  const keepBytes = keepText === undefined ? undefined : /^\d+$/.test(keepText) ? Number(keepText) : parseSize(keepText);
  if (olderText !== undefined && olderThanMs === undefined) {
    return failWith(ctx, [error('usage', `--older-than '${olderText}' is not a duration`, { hint: 'write a number and a unit: 30m, 12h, 7d, 2w' })]);
  }
  if (keepText !== undefined && keepBytes === undefined) {
    return failWith(ctx, [error('usage', `--keep-bytes '${keepText}' is not a size`, { hint: 'write bytes, or a number with KiB, MiB, GiB' })]);
  }
  const busy = await store.activeUsers();
  if (busy.length > 0) {
    return failWith(ctx, [
      error('cache-busy', `the cache is in use by orchestrator (pid ${busy.join(', ')})`, { hint: 'prune when those builds have finished' }),
    ]);
  }
  const result = await pruneStore(store, {
    ...(await referencedPaths(store)),
    ...(olderThanMs !== undefined ? { olderThanMs } : {}),
    ...(keepBytes !== undefined ? { keepBytes } : {}),
    dryRun: boolOption(args, 'dry-run'),
  });
  if (json) {
    const removed = result.removed.filter((e) => e.kind !== 'block').map((e) => ({ kind: e.kind, id: e.id, bytes: e.bytes }));
    ctx.stdout.write(JSON.stringify({ removed, blocks: result.blocks, freedBytes: result.freedBytes, totalBytesAfter: result.totalBytesAfter }, null, 2) + '\n');
    return EXIT.ok;
  }
  const verb = boolOption(args, 'dry-run') ? 'would remove' : 'removed';
  for (const e of result.removed) if (e.kind !== 'block') ctx.stdout.write(`${verb} ${e.kind} ${e.id} (${formatBytes(e.bytes)})\n`);
  // The block cache holds one entry per file content: a count, not a line each.
  if (result.blocks.removed > 0) ctx.stdout.write(`${verb} ${result.blocks.removed} block cache entries (${formatBytes(result.blocks.freedBytes)})\n`);
  if (result.blocks.temps > 0) ctx.stdout.write(`removed ${result.blocks.temps} block cache temps left by interrupted exports\n`);
  ctx.stdout.write(`${boolOption(args, 'dry-run') ? 'would free' : 'freed'} ${formatBytes(result.freedBytes)}; ${result.keptReferenced} entries kept (used by a project); the cache now holds ${formatBytes(result.totalBytesAfter)}\n`);
  return EXIT.ok;
}

const SUBCOMMANDS = ['ls', 'du', 'prune'] as const;
const KIND_LABEL: Readonly<Record<StoreEntryKind, string>> = { blob: 'blobs', layer: 'layers', snapshot: 'snapshots', block: 'blocks', tmp: 'tmp' };

export const command: Command = {
  spec: {
    name: 'cache',
    summary: 'list, measure or prune the cache',
    usage: 'ls|du|prune [--json] [--older-than D] [--keep-bytes N] [--dry-run] [--cache-dir DIR]',
    description: [
      "'cache ls' lists every blob, layer, snapshot and temp entry with its size (the squashfs block cache as one", "row); 'cache du' sums them by kind.",
      "'cache prune' removes what no project's last build uses, least recently used first: all of it, or only",
      'what was not used for --older-than D (30m, 12h, 7d, 2w), or until the cache holds --keep-bytes N (10GiB).',
      "It keeps the squashfs block cache entries a project's last export used. It does not run while another",
      'orchestrator process is using the cache.',
    ].join('\n'),
    options: [
      { name: 'older-than', type: 'string', value: 'D', description: "prune: only entries unused for this long (30m, 12h, 7d, 2w)" },
      { name: 'keep-bytes', type: 'string', value: 'N', description: 'prune: stop once the cache is this small (bytes, or 500MiB, 10GiB)' },
      { name: 'dry-run', short: 'n', type: 'boolean', description: 'prune: say what would be removed' },
      { name: 'json', type: 'boolean', description: 'machine-readable output' },
      { name: 'cache-dir', type: 'string', value: 'DIR', description: 'the cache folder (default $ORCHESTRATOR_CACHE, $XDG_CACHE_HOME/orchestrator)' },
      { name: 'file', short: 'f', type: 'string', value: 'FILE', description: "the project manifest whose cache.dir to use" },
      { name: 'directory', short: 'C', type: 'string', value: 'DIR', description: 'run as if started in DIR' },
      ...FAKEROOT_OPTIONS,
    ],
    positionals: { min: 1, max: 1 },
  },
  async run(ctx, args) {
    const sub = args.positionals[0]!;
    if (sub !== 'ls' && sub !== 'du' && sub !== 'prune') {
      return failWith(ctx, [
        error('usage', `unknown 'cache' subcommand '${sub}'`, { hint: didYouMeanHint(sub, SUBCOMMANDS) ?? `expected one of ${SUBCOMMANDS.join(', ')}` }),
      ]);
    }
    const project = await findProject(ctx, stringOption(args, 'file'), stringOption(args, 'directory'));
    const proj = project === 'missing' ? undefined : project;
    const store = await Store.open({ dir: stringOption(args, 'cache-dir') ?? proj?.cacheDir, base: proj?.dir ?? ctx.cwd, env: ctx.env });
    const json = boolOption(args, 'json');
    if (sub === 'prune') return prune(ctx, args, store, json);
    if (sub === 'ls') {
      const entries = await store.list();
      if (json) {
        ctx.stdout.write(
          JSON.stringify({ root: store.root, entries: entries.map((e) => ({ kind: e.kind, id: e.id, bytes: e.bytes, mtime: e.mtime.toISOString() })) }, null, 2) + '\n',
        );
        return EXIT.ok;
      }
      if (entries.length === 0) {
        ctx.stdout.write(`${store.root}: empty\n`);
        return EXIT.ok;
      }
      // The block cache holds one entry per file content: one summary row.
      const blocks = entries.filter((e) => e.kind === 'block');
      const rows = entries.filter((e) => e.kind !== 'block').map((e) => [e.kind, e.id, formatBytes(e.bytes), e.mtime.toISOString().slice(0, 19).replace('T', ' ')] as const);
      const w = [4, 2, 4].map((min, i) => Math.max(min, ...rows.map((r) => r[i]!.length)));
      ctx.stdout.write(`${'KIND'.padEnd(w[0]!)}  ${'ID'.padEnd(w[1]!)}  ${'SIZE'.padStart(w[2]!)}  MODIFIED\n`);
      if (blocks.length > 0) {
        const newest = new Date(blocks.reduce((t, e) => Math.max(t, e.mtime.getTime()), 0));
        rows.push(['block', `(${blocks.length} entries)`, formatBytes(blocks.reduce((n, e) => n + e.bytes, 0)), newest.toISOString().slice(0, 19).replace('T', ' ')]);
      }
      for (const r of rows) ctx.stdout.write(`${r[0].padEnd(w[0]!)}  ${r[1].padEnd(w[1]!)}  ${r[2].padStart(w[2]!)}  ${r[3]}\n`);
      return EXIT.ok;
    }
    const usage = await store.usage();
    if (json) {
      ctx.stdout.write(JSON.stringify(usage, null, 2) + '\n');
      return EXIT.ok;
    }
    ctx.stdout.write(`${usage.root}\n`);
    for (const kind of Object.keys(usage.kinds) as StoreEntryKind[]) {
      const k = usage.kinds[kind];
      ctx.stdout.write(`  ${KIND_LABEL[kind].padEnd(10)} ${String(k.count).padStart(6)}  ${formatBytes(k.bytes).padStart(10)}\n`);
    }
    ctx.stdout.write(`  ${'total'.padEnd(10)} ${''.padStart(6)}  ${formatBytes(usage.totalBytes).padStart(10)}\n`);
    return EXIT.ok;
  },
};
