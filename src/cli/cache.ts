import { error } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { formatBytes } from '../report/format-bytes.js';
import { Store, type StoreEntryKind } from '../store/store.js';
import { boolOption, stringOption } from './args.js';
import { EXIT, printDiagnostics, type Command } from './command.js';
import { findProject } from './pull.js';

const SUBCOMMANDS = ['ls', 'du'] as const;
const KIND_LABEL: Readonly<Record<StoreEntryKind, string>> = { blob: 'blobs', layer: 'layers', snapshot: 'snapshots', tmp: 'tmp' };

export const command: Command = {
  spec: {
    name: 'cache',
    summary: 'list the cache and its size',
    usage: 'ls|du [--json] [--cache-dir DIR]',
    description: "'cache ls' lists every blob, layer, snapshot and temp entry with its size; 'cache du' sums them by kind.",
    options: [
      { name: 'json', type: 'boolean', description: 'machine-readable output' },
      { name: 'cache-dir', type: 'string', value: 'DIR', description: 'the cache folder (default $ORCHESTRATOR_CACHE, $XDG_CACHE_HOME/orchestrator)' },
      { name: 'file', short: 'f', type: 'string', value: 'FILE', description: "the project manifest whose cache.dir to use" },
      { name: 'directory', short: 'C', type: 'string', value: 'DIR', description: 'run as if started in DIR' },
    ],
    positionals: { min: 1, max: 1 },
  },
  async run(ctx, args) {
    const sub = args.positionals[0]!;
    if (sub !== 'ls' && sub !== 'du') {
      printDiagnostics(ctx, [
        error('usage', `unknown 'cache' subcommand '${sub}'`, { hint: didYouMeanHint(sub, SUBCOMMANDS) ?? `expected one of ${SUBCOMMANDS.join(', ')}` }),
      ]);
      return EXIT.usage;
    }
    const project = await findProject(ctx, stringOption(args, 'file'), stringOption(args, 'directory'));
    const proj = project === 'missing' ? undefined : project;
    const store = await Store.open({ dir: stringOption(args, 'cache-dir') ?? proj?.cacheDir, base: proj?.dir ?? ctx.cwd, env: ctx.env });
    const json = boolOption(args, 'json');
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
      const rows = entries.map((e) => [e.kind, e.id, formatBytes(e.bytes), e.mtime.toISOString().slice(0, 19).replace('T', ' ')] as const);
      const w = [4, 2, 4].map((min, i) => Math.max(min, ...rows.map((r) => r[i]!.length)));
      ctx.stdout.write(`${'KIND'.padEnd(w[0]!)}  ${'ID'.padEnd(w[1]!)}  ${'SIZE'.padStart(w[2]!)}  MODIFIED\n`);
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
