import type { Format } from './project.js';

/**
 * The format an output path implies (docs/ARCHITECTURE.md, Manifest and recipes): a trailing `/` is a sandbox folder, `.simg`
 * and `.sqfs` a squashfs image, `.img` an ext3 image, `.sif` a SIF image. Other names imply nothing.
 */
export function outputFormat(output: string): Format | undefined {
  if (output.endsWith('/')) return 'sandbox';
  const lower = output.toLowerCase();
  if (lower.endsWith('.simg') || lower.endsWith('.sqfs')) return 'squashfs';
  if (lower.endsWith('.img')) return 'ext3';
  if (lower.endsWith('.sif')) return 'sif';
  return undefined;
}

/** `build/NAME/`, `build/NAME.img`, `build/NAME.simg`, `build/NAME.sif` (relative to the project folder). */
export function defaultOutput(name: string, format: Format): string {
  switch (format) {
    case 'sandbox':
      return `build/${name}/`;
    case 'ext3':
      return `build/${name}.img`;
    case 'squashfs':
      return `build/${name}.simg`;
    case 'sif':
      return `build/${name}.sif`;
  }
}

/** `output` renamed to fit `format`: `dist/x.simg` → `dist/x/` for a sandbox. */
export function outputFor(output: string, format: Format): string {
  const stem = output.replace(/\/+$/, '').replace(/\.(simg|sqfs|img|sif)$/i, '');
  switch (format) {
    case 'sandbox':
      return `${stem}/`;
    case 'ext3':
      return `${stem}.img`;
    case 'squashfs':
      return `${stem}.simg`;
    case 'sif':
      return `${stem}.sif`;
  }
}
