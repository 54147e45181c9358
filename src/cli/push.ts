import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { error } from '../core/diagnostic.js';
import { shortDigest } from '../core/digest.js';
import { ok, type Result } from '../core/result.js';
import type { DetectedImage } from '../image/detect-image.js';
import { extractImageTree, IMAGE_ARCHITECTURE, recordedStack } from '../builder/push-output.js';
import { resolveImage } from '../image/resolve-image.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { formatBytes } from '../report/format-bytes.js';
import { Store } from '../store/store.js';
import { stringOption, type ParsedArgs } from './args.js';
import { EXIT, failWith, type Command, type CommandContext } from './command.js';
import { makeRegistryClient } from './registry-client-factory.js';
import { targetImageResolver } from './resolve-target-image.js';
import { FAKEROOT_OPTIONS } from './build-namespace.js';

/**
 * What to push, as an overlay stack (top first): a target's recorded stack of cached steps when
 * its last build's folders are all still in the cache (one layer per step), else the image alone
 * (a sandbox folder as it is; an image file extracted once into the cache).
 */
async function stackOf(
  ctx: CommandContext,
  arg: string,
  args: ParsedArgs,
): Promise<Result<{ lowers: readonly string[]; what: string; cacheDir: string | undefined; file?: DetectedImage }>> {
  const name = arg.startsWith('target:') ? arg.slice('target:'.length) : !arg.includes('/') && !existsSync(arg) ? arg : undefined;
  let cacheDir: string | undefined;
  if (name !== undefined) {
    const { loadProject } = await import('../manifest/load-project.js');
    const { project } = await loadProject({ cwd: ctx.cwd, ...(stringOption(args, 'directory') !== undefined ? { dir: stringOption(args, 'directory')! } : {}), ...(stringOption(args, 'file') !== undefined ? { file: stringOption(args, 'file')! } : {}) });
    const target = project?.targets.find((t) => t.name === name);
    if (project && target) {
      cacheDir = project.cacheDir;
      const { ProjectState } = await import('../state/project-state.js');
      const record = (await ProjectState.load(project.dir)).get(name);
      const lowers = await recordedStack(record?.output === target.output ? record.lowers : undefined);
      if (lowers) return ok({ lowers, what: `target ${name}`, cacheDir });
    }
  }
  const image = await resolveImage(name !== undefined ? `target:${name}` : arg, { cwd: ctx.cwd, resolveTarget: targetImageResolver(ctx), signal: ctx.signal });
  if (!image.ok) return image;
  return ok({ lowers: [image.value.path], what: image.value.path, cacheDir, ...(image.value.format !== 'sandbox' ? { file: image.value } : {}) });
}

/**
 * `push TARGET|FILE.sif oras://REG/REPO:TAG`: the SIF file itself as Apptainer's ORAS artifact
 * (src/builder/oras-source.ts). A target names its output, which must be a SIF file.
 */
async function pushOras(ctx: CommandContext, imageArg: string, destArg: string): Promise<number> {
  const { parseOrasReference, formatOrasReference } = await import('../registry/oras.js');
  const ref = parseOrasReference(destArg);
  if (!ref.ok) return failWith(ctx, [ref.error]);
  if (ref.value.digest !== undefined) {
    return failWith(ctx, [error('usage', `'${destArg}' names a digest; push to a tag`, { hint: 'the digest is what the registry computes from what is pushed' })]);
  }
  const name = imageArg.startsWith('target:') ? imageArg.slice('target:'.length) : !imageArg.includes('/') && !existsSync(imageArg) ? imageArg : undefined;
  let path = resolve(ctx.cwd, imageArg);
  if (name !== undefined) {
    const output = await targetImageResolver(ctx)(name);
    if (!output.ok) return failWith(ctx, [output.error]);
    path = output.value;
  }
  const client = await makeRegistryClient(ctx.env);
  try {
    const { pushSif } = await import('../builder/oras-source.js');
    const r = await pushSif(ref.value, path, {
      client,
      shownAs: name !== undefined ? `target ${name} (${path})` : imageArg,
      onBlob: (b) => ctx.stderr.write(`${shortDigest(b.digest)}: ${b.how === 'uploaded' ? `uploaded ${formatBytes(b.size)}` : b.how === 'exists' ? 'already there' : 'mounted'}\n`),
      signal: ctx.signal,
    });
    if (!r.ok) return failWith(ctx, [r.error]);
    ctx.stdout.write(`pushed ${name !== undefined ? `target ${name}` : imageArg} to ${formatOrasReference(ref.value)}@${r.value.digest}: SIF ${formatBytes(r.value.size)}, ${formatBytes(r.value.bytesSent)} sent\n`);
    return EXIT.ok;
  } finally {
    await client.close();
  }
}

export const command: Command = {
  spec: {
    name: 'push',
    summary: 'publish an output or image to a registry as an OCI image',
    usage: 'TARGET|IMAGE docker://REG/REPO:TAG | TARGET|FILE.sif oras://REG/REPO:TAG [--cache-dir DIR] [-f FILE | -C DIR]',
    description: [
      'Pushes a target (its name, or target:NAME) or an image (a sandbox folder, a squashfs or ext3 image file) as an OCI image:',
      "one layer per cached step when the target's last build is in the cache (a second push uploads only the steps that changed),",
      'else one layer; a config with Env, Cmd (the runscript) and Labels from the Singularity metadata. Blobs the registry has are',
      'never uploaded again. Credentials come from ~/.docker/config.json or $REGISTRY_AUTH_FILE.',
      'To oras://, a SIF file (or a target built with format: sif) goes up as it is, as Apptainer pushes it: one layer of type',
      'application/vnd.sylabs.sif.layer.v1.sif, config application/vnd.sylabs.sif.config.v1+json.',
    ].join('\n'),
    options: [
      { name: 'cache-dir', type: 'string', value: 'DIR', description: "the cache folder (default: the manifest's cache.dir, $ORCHESTRATOR_CACHE, $XDG_CACHE_HOME/orchestrator)" },
      { name: 'file', short: 'f', type: 'string', value: 'FILE', description: 'the manifest, for target names (default ./orchestrator.yaml)' },
      { name: 'directory', short: 'C', type: 'string', value: 'DIR', description: 'the project folder, for target names' },
      ...FAKEROOT_OPTIONS,
    ],
    positionals: { min: 2, max: 2 },
  },
  async run(ctx, args) {
    const [imageArg, destArg] = args.positionals as [string, string];
    if (destArg.startsWith('oras://')) return pushOras(ctx, imageArg, destArg);
    if (!destArg.startsWith('docker://')) {
      return failWith(ctx, [error('usage', `'${destArg}' is not a registry reference`, { hint: 'write docker://REGISTRY/REPOSITORY:TAG, or oras://REGISTRY/REPOSITORY:TAG for a SIF file' })]);
    }
    const ref = parseReference(destArg);
    if (!ref.ok) return failWith(ctx, [ref.error]);
    if (ref.value.digest !== undefined) {
      return failWith(ctx, [error('usage', `'${destArg}' names a digest; push to a tag`, { hint: 'the digest is what the registry computes from what is pushed' })]);
    }
    const stack = await stackOf(ctx, imageArg, args);
    if (!stack.ok) return failWith(ctx, [stack.error]);
    const store = await Store.open({ dir: stringOption(args, 'cache-dir') ?? stack.value.cacheDir, base: ctx.cwd, env: ctx.env });
    let lowers = stack.value.lowers;
    let removeExtracted: (() => Promise<void>) | undefined;
    if (stack.value.file) {
      const tree = await extractImageTree(stack.value.file, store, ctx.signal);
      if (!tree.ok) return failWith(ctx, [tree.error]);
      removeExtracted = tree.value.remove;
      lowers = [tree.value.root];
    }
    const client = await makeRegistryClient(ctx.env);
    try {
      const { publishImage } = await import('../builder/publish-image.js');
      const r = await publishImage(ref.value, {
        client,
        store,
        lowers,
        architecture: IMAGE_ARCHITECTURE,
        onBlob: (b) => ctx.stderr.write(`${shortDigest(b.digest)}: ${b.how === 'uploaded' ? `uploaded ${formatBytes(b.size)}` : b.how === 'exists' ? 'already there' : 'mounted'}\n`),
        signal: ctx.signal,
      });
      if (!r.ok) return failWith(ctx, [r.error]);
      ctx.stdout.write(
        `pushed ${stack.value.what} to ${formatReference(ref.value)}@${r.value.digest}: ${r.value.layers} layer${r.value.layers === 1 ? '' : 's'}, ${r.value.uploadedLayers} uploaded (${formatBytes(r.value.bytesSent)})\n`,
      );
      return EXIT.ok;
    } finally {
      await client.close();
      await removeExtracted?.();
    }
  },
};
