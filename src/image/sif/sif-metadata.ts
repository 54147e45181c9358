import { readSif, readSifObject } from './read-sif.js';
import { DATA_DEFFILE, DATA_LABELS } from './sif-format.js';

/**
 * The definition file or labels of a SIF image from its own objects (`Def.FILE`, `JSON.Labels`),
 * as Apptainer's `inspect` reads them; undefined when the image has no such object (the caller
 * then reads `/.singularity.d/` in the file system).
 */
export async function sifMetadataObject(path: string, part: 'deffile' | 'labels'): Promise<Buffer | undefined> {
  const image = await readSif(path);
  if (!image.ok) return undefined;
  const type = part === 'deffile' ? DATA_DEFFILE : DATA_LABELS;
  const object = image.value.objects.find((o) => o.dataType === type);
  return object ? await readSifObject(image.value, object) : undefined;
}
