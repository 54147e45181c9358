import type { RemoteCacheSummary, RemoteStepCache } from '../builder/remote-cache.js';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { parseReference, type ImageReference } from '../registry/reference.js';
import type { RegistryClient } from '../registry/registry-client.js';
import { formatBytes } from '../report/format-bytes.js';
import type { Store } from '../store/store.js';
import { listOption, type OptionSpec, type ParsedArgs } from './args.js';
import type { CommandContext } from './command.js';
import { makeRegistryClient } from './registry-client-factory.js';
import { version } from './version.js';

/** `--cache-from` and `--cache-to` of `up` and `build` (README, "Sharing a step cache"). */
export const REMOTE_CACHE_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'cache-from',
    type: 'string',
    multiple: true,
    value: 'REG/REPO',
    description: 'a registry repository to take steps from when the local cache lacks them (repeatable; default: the manifest\'s cache.remote)',
  },
  {
    name: 'cache-to',
    type: 'string',
    multiple: true,
    value: 'REG/REPO',
    description: 'a registry repository to push every step of this build to, alongside the build (repeatable)',
  },
];

/** A cache repository as written: `[docker://]HOST[:PORT]/PATH`, no tag, no digest. */
export function parseCacheRepository(text: string, what: string): Result<ImageReference, Diagnostic> {
  const bare = text.trim().replace(/^docker:\/\//, '');
  const lastPart = bare.slice(bare.lastIndexOf('/') + 1);
  if (bare.includes('@') || lastPart.includes(':')) {
    return fail(error('usage', `${what} '${text}' names a tag or digest; a step cache is a repository`, { hint: 'write REGISTRY/REPOSITORY, e.g. registry.example.com/team/cache: each step is a tag of its own there' }));
  }
  const r = parseReference(bare);
  if (!r.ok) return fail(error('usage', `${what} '${text}' is not a registry repository: ${r.error.message}`, { hint: 'write REGISTRY/REPOSITORY' }));
  return ok(r.value);
}

/**
 * The remote step cache the command line and the manifest ask for, or undefined when none is:
 * `--cache-from` (else the manifest's `cache.remote`) to read, `--cache-to` (and `cache.remote`
 * with `cache.push: true`) to write. Its warnings go to stderr as they come, once per repository.
 */
export async function remoteCacheFromArgs(
  ctx: CommandContext,
  args: ParsedArgs,
  o: { store: Store; manifest?: { readonly remote?: string | undefined; readonly push?: boolean | undefined } },
): Promise<Result<{ readonly cache: RemoteStepCache; readonly close: () => Promise<void> } | undefined, Diagnostic[]>> {
  const errors: Diagnostic[] = [];
  const parse = (texts: readonly string[], what: string): ImageReference[] =>
    texts.flatMap((t) => {
      const r = parseCacheRepository(t, what);
      if (!r.ok) errors.push(r.error);
      return r.ok ? [r.value] : [];
    });
  const fromArgs = listOption(args, 'cache-from');
  const from = parse(fromArgs.length > 0 ? fromArgs : o.manifest?.remote !== undefined ? [o.manifest.remote] : [], fromArgs.length > 0 ? '--cache-from' : 'cache.remote');
  const to = parse([...listOption(args, 'cache-to'), ...(o.manifest?.push === true && o.manifest.remote !== undefined ? [o.manifest.remote] : [])], '--cache-to');
  if (errors.length > 0) return fail(errors);
  if (from.length === 0 && to.length === 0) return ok(undefined);
  const { RemoteStepCache: Cache } = await import('../builder/remote-cache.js');
  // A client of its own, with fewer and shorter retries than a pull's: a cache that does not
  // answer should cost a second or two before the step builds locally, not half a minute.
  let client: RegistryClient | undefined;
  const cache = new Cache({
    client: async () => (client ??= await makeRegistryClient(ctx.env, { retry: { attempts: 3, baseMs: 200, maxMs: 2000 } })),
    store: o.store,
    from,
    to: to.filter((r, i) => to.findIndex((x) => x.canonical === r.canonical) === i),
    toolVersion: version(),
    onEvent: (e) => {
      if (e.type === 'remote-cache-warning') ctx.stderr.write(`warning: remote cache ${e.where}: ${e.message}; steps build locally\n`);
    },
    signal: ctx.signal,
  });
  return ok({ cache, close: async () => await client?.close() });
}

/** `, 2 from remote cache (1.2 MiB), pushed 3 to remote cache (4.5 MiB uploaded)` for a one-shot build's last line. */
export function remoteSummary(s: RemoteCacheSummary): string {
  const parts: string[] = [];
  if (s.pulled > 0) parts.push(`${s.pulled} from remote cache (${formatBytes(s.pulledBytes)})`);
  if (s.pushed > 0 || s.pushFailed > 0) parts.push(`pushed ${s.pushed} to remote cache (${formatBytes(s.pushedBytes)} uploaded)${s.pushFailed > 0 ? `, ${s.pushFailed} not pushed` : ''}`);
  return parts.map((p) => `, ${p}`).join('');
}
