import { resolve } from 'node:path';
import { error } from '../core/diagnostic.js';
import { unreachable } from '../core/unreachable.js';
import { readSif } from '../image/sif/read-sif.js';
import { formatSifHeader, formatSifList, sifHeaderJson, sifListJson } from '../image/sif/sif-listing.js';
import { EXIT, failWith, type Command } from './command.js';

const SUBCOMMANDS = ['list', 'header'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

function isSubcommand(s: string): s is Subcommand {
  return (SUBCOMMANDS as readonly string[]).includes(s);
}

export const command: Command = {
  spec: {
    name: 'sif',
    summary: 'show the objects or the global header of a SIF image (as siftool list/header)',
    usage: 'list|header FILE [--json]',
    description: [
      'list    the data objects: ID, group, link, position in the file, type (siftool list)',
      'header  the global header: launch line, version, architecture, ID, times, descriptor table (siftool header)',
    ].join('\n'),
    options: [{ name: 'json', type: 'boolean', description: 'print JSON instead of the siftool table' }],
    positionals: { min: 2, max: 2 },
  },
  async run(ctx, args) {
    const sub = args.positionals[0]!;
    const file = args.positionals[1]!;
    if (!isSubcommand(sub)) {
      return failWith(ctx, [error('usage', `unknown sif command '${sub}': expected ${SUBCOMMANDS.join(' or ')}`, { hint: "see 'orchestrator sif --help'" })]);
    }
    const image = await readSif(resolve(ctx.cwd, file), file);
    if (!image.ok) return failWith(ctx, [image.error]);
    const json = args.options['json'] === true;
    switch (sub) {
      case 'list':
        ctx.stdout.write(json ? `${JSON.stringify(sifListJson(image.value), null, 2)}\n` : formatSifList(image.value));
        return EXIT.ok;
      case 'header':
        ctx.stdout.write(json ? `${JSON.stringify(sifHeaderJson(image.value), null, 2)}\n` : formatSifHeader(image.value));
        return EXIT.ok;
      default:
        return unreachable(sub);
    }
  },
};
