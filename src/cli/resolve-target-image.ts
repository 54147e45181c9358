import { error } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { fail, ok, type Result } from '../core/result.js';
import type { DetectedImage } from '../image/detect-image.js';
import { resolveImage } from '../image/resolve-image.js';
import { printDiagnostics, type CommandContext } from './command.js';

/** `target:NAME` as an IMAGE argument (docs/ARCHITECTURE.md, Images): that target's output, from ./orchestrator.yaml. */
export function targetImageResolver(ctx: CommandContext): (name: string) => Promise<Result<string>> {
  return async (name) => {
    // Loaded only for target: images: exec/run of an image file reads no manifest.
    const { loadProject } = await import('../manifest/load-project.js');
    const { project, diagnostics } = await loadProject({ cwd: ctx.cwd });
    if (!project) {
      const first = diagnostics[0];
      return fail(
        error('image-target-no-manifest', `'target:${name}' names a target of orchestrator.yaml, and the manifest here cannot be read${first ? `: ${first.message}` : ''}`, {
          hint: "run the command in the project's folder, or give the image's path",
        }),
      );
    }
    const target = project.targets.find((t) => t.name === name);
    if (!target) {
      return fail(
        error('image-target-unknown', `unknown target '${name}'`, {
          hint: didYouMeanHint(name, project.targets.map((t) => t.name)) ?? `the targets are ${project.targets.map((t) => t.name).join(', ')}`,
        }),
      );
    }
    return ok(target.output);
  };
}

/**
 * The IMAGE argument of shell/exec/run/test/inspect/run-help as a detected image (a path or
 * `target:NAME`); undefined after printing why it is not one (the caller exits 2).
 */
export async function requireImage(ctx: CommandContext, arg: string): Promise<DetectedImage | undefined> {
  const image = await resolveImage(arg, { cwd: ctx.cwd, resolveTarget: targetImageResolver(ctx), signal: ctx.signal });
  if (image.ok) return image.value;
  printDiagnostics(ctx, [image.error]);
  return undefined;
}
