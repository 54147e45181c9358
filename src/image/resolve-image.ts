import { error } from '../core/diagnostic.js';
import { fail, type Result } from '../core/result.js';
import { detectImage, type DetectedImage } from './detect-image.js';

/**
 * Turns the IMAGE argument of shell/exec/run/test/inspect into a detected image. `target:NAME`
 * names a manifest target (docs/ARCHITECTURE.md, Images); resolving it needs the manifest loader, which plugs in
 * through `resolveTarget`.
 */
export async function resolveImage(
  arg: string,
  options: { cwd: string; resolveTarget?: (name: string) => Promise<Result<string>>; signal?: AbortSignal },
): Promise<Result<DetectedImage>> {
  if (arg.startsWith('target:')) {
    const name = arg.slice('target:'.length);
    if (!options.resolveTarget) {
      return fail(error('image-target-unsupported', `'${arg}': target images are not supported by this command yet`, { hint: "give the target's output path instead" }));
    }
    const path = await options.resolveTarget(name);
    if (!path.ok) return path;
    return detectImage(path.value, { cwd: options.cwd });
  }
  return detectImage(arg, { cwd: options.cwd });
}
