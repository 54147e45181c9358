import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { error } from '../core/diagnostic.js';
import { unreachable } from '../core/unreachable.js';
import { PgpError, readKeys } from '../image/sif/pgp.js';
import { readSif, type SifImage } from '../image/sif/read-sif.js';
import { formatSifHeader, formatSifList, sifHeaderJson, sifListJson } from '../image/sif/sif-listing.js';
import { formatVerified, verifySif } from '../image/sif/verify-sif.js';
import { EXIT, failWith, type Command, type CommandContext } from './command.js';

const SUBCOMMANDS = ['list', 'header', 'verify'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

function isSubcommand(s: string): s is Subcommand {
  return (SUBCOMMANDS as readonly string[]).includes(s);
}

function printJson(ctx: CommandContext, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export const command: Command = {
  spec: {
    name: 'sif',
    summary: 'list the objects, show the header or verify the signatures of a SIF image',
    usage: 'list|header|verify FILE [--key KEYFILE] [--json]',
    description: [
      'list    the data objects: ID, group, link, position in the file, type (as siftool list)',
      'header  the global header: launch line, version, architecture, ID, times, descriptor table (as siftool header)',
      "verify  check every PGP signature object with --key (a public or secret key block), as 'apptainer verify'",
      '        does, and say which objects each covers',
    ].join('\n'),
    options: [
      { name: 'json', type: 'boolean', description: 'print JSON instead of text' },
      { name: 'key', type: 'string', value: 'KEYFILE', description: "verify: the signer's OpenPGP key (armored or binary)" },
    ],
    positionals: { min: 2, max: 2 },
  },
  async run(ctx, args) {
    const sub = args.positionals[0]!;
    const file = args.positionals[1]!;
    if (!isSubcommand(sub)) {
      return failWith(ctx, [error('usage', `unknown sif command '${sub}': expected ${SUBCOMMANDS.join(', ')}`, { hint: "see 'orchestrator sif --help'" })]);
    }
    const key = args.options['key'];
    if (sub === 'verify' && typeof key !== 'string') {
      return failWith(ctx, [error('usage', 'sif verify needs --key KEYFILE', { hint: "give the signer's OpenPGP public key: orchestrator sif verify --key KEY.asc IMAGE" })]);
    }
    if (sub !== 'verify' && key !== undefined) {
      return failWith(ctx, [error('usage', `--key is for sif verify, not sif ${sub}`, { hint: "see 'orchestrator sif --help'" })]);
    }
    const image = await readSif(resolve(ctx.cwd, file), file);
    if (!image.ok) return failWith(ctx, [image.error]);
    const json = args.options['json'] === true;
    switch (sub) {
      case 'list':
        if (json) printJson(ctx, sifListJson(image.value));
        else ctx.stdout.write(formatSifList(image.value));
        return EXIT.ok;
      case 'header':
        if (json) printJson(ctx, sifHeaderJson(image.value));
        else ctx.stdout.write(formatSifHeader(image.value));
        return EXIT.ok;
      case 'verify':
        return verify(ctx, { image: image.value, file, keyFile: String(key), json });
      default:
        return unreachable(sub);
    }
  },
};

/** `sif verify`: every signature object checked with the given key; one line (or JSON entry) each. */
async function verify(ctx: CommandContext, o: { image: SifImage; file: string; keyFile: string; json: boolean }): Promise<number> {
  let keys;
  try {
    keys = readKeys(await readFile(resolve(ctx.cwd, o.keyFile)));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const detail = e instanceof PgpError ? e.message : code === 'ENOENT' ? 'no such file' : (e as Error).message;
    return failWith(ctx, [error('sif-bad-key', `${o.keyFile}: ${detail}`, { hint: 'give an OpenPGP key block (gpg --export --armor KEYID > key.asc)' })]);
  }
  const verified = await verifySif(o.file, o.image, keys, o.keyFile);
  if (!verified.ok) return failWith(ctx, [verified.error]);
  if (o.json) printJson(ctx, verified.value);
  else ctx.stdout.write(verified.value.map(formatVerified).join(''));
  return EXIT.ok;
}
