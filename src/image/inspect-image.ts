import type { DetectedImage } from './detect-image.js';
import { listImageFiles, readImageFile } from './image-files.js';
import { sifMetadataObject } from './sif/sif-metadata.js';

/** The parts `inspect` can show, named as in Apptainer's JSON. */
export type InspectPart = 'labels' | 'deffile' | 'runscript' | 'test' | 'environment' | 'helpfile';

export const INSPECT_PARTS: readonly InspectPart[] = ['labels', 'deffile', 'runscript', 'test', 'environment', 'helpfile'];

/** What an image's `/.singularity.d/` says; null for missing parts (Apptainer's JSON). */
export interface InspectAttributes {
  labels?: Record<string, unknown> | null;
  deffile?: string | null;
  runscript?: string | null;
  test?: string | null;
  /** Each `/.singularity.d/env/*.sh`, in order, path → content. */
  environment?: Record<string, string> | null;
  helpfile?: string | null;
}

const FILES: Readonly<Record<Exclude<InspectPart, 'labels' | 'environment'>, string>> = {
  deffile: '/.singularity.d/Singularity',
  runscript: '/.singularity.d/runscript',
  test: '/.singularity.d/test',
  helpfile: '/.singularity.d/runscript.help',
};

/**
 * Reads the requested parts of an image's metadata. Labels that are not a JSON object are shown
 * as null. A SIF image's definition file and labels come from its `Def.FILE` and `JSON.Labels`
 * objects when it has them, as Apptainer reads them.
 */
export async function inspectImage(image: DetectedImage, parts: readonly InspectPart[], options: { signal?: AbortSignal } = {}): Promise<InspectAttributes> {
  const out: InspectAttributes = {};
  for (const part of parts) {
    if (part === 'labels') {
      const raw = (image.sif && (await sifMetadataObject(image.path, 'labels'))) || (await readImageFile(image, '/.singularity.d/labels.json', options));
      let labels: Record<string, unknown> | null = null;
      if (raw) {
        try {
          const parsed: unknown = JSON.parse(raw.toString('utf8'));
          if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) labels = parsed as Record<string, unknown>;
        } catch {
          labels = null;
        }
      }
      out.labels = labels;
    } else if (part === 'environment') {
      const names = (await listImageFiles(image, '/.singularity.d/env', options)).filter((n) => n.endsWith('.sh'));
      const env: Record<string, string> = {};
      for (const n of names) {
        const path = `/.singularity.d/env/${n}`;
        const text = await readImageFile(image, path, options);
        if (text) env[path] = text.toString('utf8');
      }
      out.environment = Object.keys(env).length > 0 ? env : null;
    } else {
      const fromSif = part === 'deffile' && image.sif ? await sifMetadataObject(image.path, 'deffile') : undefined;
      const raw = fromSif ?? (await readImageFile(image, FILES[part], options));
      out[part] = raw ? raw.toString('utf8') : null;
    }
  }
  return out;
}
