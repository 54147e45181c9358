import { join } from 'node:path';
import type { Diagnostic } from '../core/diagnostic.js';
import { LOCK_FILE_NAME, readLockFile, withLockEntry, writeLockFile } from '../lock/lock-file.js';
import { formatPlatform, DEFAULT_PLATFORM } from '../registry/platform.js';
import { formatReference, parseReference, type ImageReference } from '../registry/reference.js';
import { boolOption } from './args.js';
import { EXIT, type Command, failWith } from './command.js';
import { PROJECT_OPTIONS, requireProjectAndRecipes } from './project-options.js';
import { makeRegistryClient } from './registry-client-factory.js';

export const command: Command = {
  spec: {
    name: 'lock',
    summary: 'pin the registry tags of the manifest to digests in orchestrator.lock',
    usage: '[--update] [-f FILE] [-C DIR]',
    description:
      'Resolves every docker:// source of the manifest and its recipes (Bootstrap: docker) to a digest and records it in orchestrator.lock, which builds then use until --update (or up --pull) resolves them again. Commit the file to make builds repeatable.',
    options: [{ name: 'update', type: 'boolean', description: 'resolve tags that are pinned already again' }, ...PROJECT_OPTIONS],
    positionals: { min: 0, max: 0 },
  },
  async run(ctx, args) {
    const loaded = await requireProjectAndRecipes(ctx, args);
    if (loaded === undefined) return EXIT.usage;
    const { project, recipes } = loaded;
    const refs = new Map<string, ImageReference>();
    const problems: Diagnostic[] = [];
    // `oras://` SIF images are pinned under their own scheme, to the manifest digest, like docker:// tags.
    const add = (text: string, extra: { registry?: string; namespace?: string } = {}, location?: Diagnostic['location'], scheme: 'docker' | 'oras' = 'docker'): void => {
      const r = parseReference(text, { ...extra, ...(location ? { location } : {}) });
      if (!r.ok) problems.push(r.error);
      else if (r.value.digest === undefined) refs.set(scheme === 'oras' ? `oras://${r.value.canonical}` : formatReference(r.value), r.value);
    };
    for (const t of project.targets) {
      if (t.from?.kind === 'docker') add(t.from.ref, {}, t.locations.from);
      if (t.from?.kind === 'oras') add(t.from.ref, {}, t.locations.from, 'oras');
      const recipe = recipes.byTarget.get(t.name);
      const stages = recipe?.stages ?? [];
      // The last stage's header is replaced by `from:` when there is one.
      for (const [i, stage] of stages.entries()) {
        if ((stage.bootstrap !== 'docker' && stage.bootstrap !== 'oras') || (t.from && i === stages.length - 1)) continue;
        const from = stage.header.get('from');
        if (!from) continue;
        if (stage.bootstrap === 'oras') {
          add(from.value, {}, from.valueLocation, 'oras');
          continue;
        }
        add(
          from.value,
          {
            ...(stage.header.get('registry') ? { registry: stage.header.get('registry')!.value } : {}),
            ...(stage.header.get('namespace') ? { namespace: stage.header.get('namespace')!.value } : {}),
          },
          from.valueLocation,
        );
      }
    }
    if (problems.length > 0) {
      return failWith(ctx, problems);
    }
    const lockPath = join(project.dir, LOCK_FILE_NAME);
    const read = await readLockFile(lockPath);
    if (!read.ok) {
      return failWith(ctx, [read.error]);
    }
    let lock = read.value;
    const update = boolOption(args, 'update');
    const client = await makeRegistryClient(ctx.env);
    const plat = formatPlatform(DEFAULT_PLATFORM);
    try {
      for (const [name, ref] of [...refs].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const pinned = lock.images[name];
        if (pinned?.platforms[plat] && !update) {
          ctx.stdout.write(`${name}: ${pinned.platforms[plat]} (pinned)\n`);
          continue;
        }
        const m = await client.fetchManifest(ref, { platform: DEFAULT_PLATFORM, signal: ctx.signal });
        if (!m.ok) {
          return failWith(ctx, [m.error]);
        }
        const top = m.value.index?.digest ?? m.value.digest;
        const was = pinned?.platforms[plat];
        lock = withLockEntry(lock, name, top, plat, m.value.digest);
        ctx.stdout.write(`${name}: ${m.value.digest}${was === undefined ? ' (new)' : was === m.value.digest ? ' (unchanged)' : ` (was ${was})`}\n`);
      }
      if (JSON.stringify(lock) !== JSON.stringify(read.value)) await writeLockFile(lockPath, lock);
      if (refs.size === 0) ctx.stdout.write('no registry sources to pin\n');
      return EXIT.ok;
    } finally {
      await client.close();
    }
  },
};
