import { didYouMean } from '../core/did-you-mean.js';
import { error } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import type { DetectedImage } from '../image/detect-image.js';
import { readImageFile } from '../image/image-files.js';

/**
 * The SCIF apps of an image, in the order the recipe declares them. Read from
 * `/.singularity.d/env/94-appsbase.sh` (one `SCIF_APPROOT_X=/scif/apps/NAME` per app, ours and
 * Apptainer's alike), so it works for every format and every user without mounting.
 */
export async function imageApps(image: DetectedImage, options: { signal?: AbortSignal } = {}): Promise<string[]> {
  const raw = await readImageFile(image, '/.singularity.d/env/94-appsbase.sh', options);
  if (!raw) return [];
  const names: string[] = [];
  for (const m of raw.toString('utf8').matchAll(/^(?:export\s+)?SCIF_APPROOT_\w+=['"]?\/scif\/apps\/([^'"\s/]+)['"]?\s*$/gm)) {
    if (!names.includes(m[1]!)) names.push(m[1]!);
  }
  return names;
}

/** `name` when the image has that app; else an `app-not-found` Diagnostic with a did-you-mean and the list. */
export async function requireApp(image: DetectedImage, name: string, options: { signal?: AbortSignal } = {}): Promise<Result<string>> {
  const apps = await imageApps(image, options);
  if (apps.includes(name)) return ok(name);
  const close = didYouMean(name, apps);
  const list = apps.length === 0 ? 'the image has no SCIF apps' : `its apps: ${apps.join(', ')}`;
  return fail(
    error('app-not-found', `${image.path}: no SCIF app '${name}'`, {
      hint: close !== undefined ? `did you mean '${close}'? (${list})` : `${list}; 'orchestrator inspect --list-apps ${image.path}' lists them`,
    }),
  );
}
