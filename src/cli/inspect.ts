import { boolOption, stringOption } from './args.js';
import { EXIT, failWith, type Command } from './command.js';
import { requireImage } from './resolve-target-image.js';
import type { DetectedImage } from '../image/detect-image.js';
import { listImageFiles, readImageFile } from '../image/image-files.js';
import { INSPECT_PARTS, inspectImage, type InspectAttributes, type InspectPart } from '../image/inspect-image.js';
import { imageApps, requireApp } from '../runtime/image-apps.js';

/**
 * The parts of one SCIF app, from `/scif/apps/NAME/scif/` (Apptainer's `inspect --app`): its
 * labels.json, runscript, test, env files and runscript.help; the recipe is the image's.
 */
async function inspectApp(image: DetectedImage, app: string, parts: readonly InspectPart[], signal: AbortSignal): Promise<InspectAttributes> {
  const meta = `/scif/apps/${app}/scif`;
  const read = async (path: string): Promise<string | null> => (await readImageFile(image, path, { signal }))?.toString('utf8') ?? null;
  const out: InspectAttributes = {};
  for (const part of parts) {
    if (part === 'labels') {
      const raw = await read(`${meta}/labels.json`);
      let labels: Record<string, unknown> | null = null;
      try {
        const parsed: unknown = raw === null ? null : JSON.parse(raw);
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) labels = parsed as Record<string, unknown>;
      } catch {
        labels = null;
      }
      out.labels = labels;
    } else if (part === 'environment') {
      const env: Record<string, string> = {};
      for (const name of (await listImageFiles(image, `${meta}/env`, { signal })).filter((n) => n.endsWith('.sh'))) {
        const text = await read(`${meta}/env/${name}`);
        if (text !== null) env[`${meta}/env/${name}`] = text;
      }
      out.environment = Object.keys(env).length > 0 ? env : null;
    } else if (part === 'deffile') {
      out.deffile = (await inspectImage(image, ['deffile'], { signal })).deffile ?? null;
    } else {
      out[part] = await read(`${meta}/${part === 'helpfile' ? 'runscript.help' : part}`);
    }
  }
  return out;
}

function text(attrs: InspectAttributes, parts: readonly InspectPart[]): string {
  const out: string[] = [];
  for (const part of parts) {
    if (part === 'labels') {
      const labels = attrs.labels;
      if (labels) for (const [k, v] of Object.entries(labels)) out.push(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}\n`);
    } else if (part === 'environment') {
      const env = attrs.environment;
      if (env) for (const [path, content] of Object.entries(env)) out.push(`=== ${path} ===\n${content}${content.endsWith('\n') ? '' : '\n'}\n`);
    } else {
      const v = attrs[part];
      if (v) out.push(v.endsWith('\n') ? v : `${v}\n`);
    }
  }
  return out.join('');
}

export const command: Command = {
  spec: {
    name: 'inspect',
    summary: "show an image's metadata (labels, recipe, runscript, test, environment, help)",
    usage: '[--json] [--app NAME] [--labels|--deffile|--runscript|--test|--environment|--helpfile|--list-apps] IMAGE',
    description:
      "Reads /.singularity.d/ of a sandbox folder, squashfs or ext3 image without running it. Without a part option, shows the labels. --app NAME shows that SCIF app's parts (/scif/apps/NAME/scif/); --list-apps lists the apps, one a line.\n--json prints Apptainer's envelope {\"data\":{\"attributes\":{...}},\"type\":\"container\"} with null for missing parts.",
    options: [
      { name: 'json', short: 'j', type: 'boolean', description: "print Apptainer's JSON" },
      { name: 'labels', short: 'l', type: 'boolean', description: 'labels (labels.json)' },
      { name: 'deffile', short: 'd', type: 'boolean', description: 'the recipe the image was built from' },
      { name: 'runscript', short: 'r', type: 'boolean', description: 'the runscript' },
      { name: 'test', short: 't', type: 'boolean', description: 'the test script' },
      { name: 'environment', short: 'e', type: 'boolean', description: 'the environment files, in order' },
      { name: 'helpfile', short: 'H', type: 'boolean', description: 'the runscript help' },
      { name: 'app', type: 'string', value: 'NAME', description: "a SCIF app's parts instead of the image's" },
      { name: 'list-apps', type: 'boolean', description: 'the SCIF apps of the image, one a line' },
    ],
    positionals: { min: 1, max: 1 },
  },
  async run(ctx, args) {
    const image = await requireImage(ctx, args.positionals[0]!);
    if (image === undefined) return EXIT.usage;
    if (boolOption(args, 'list-apps')) {
      const apps = await imageApps(image, { signal: ctx.signal });
      const listed = apps.map((a) => `${a}\n`).join('');
      if (boolOption(args, 'json')) ctx.stdout.write(JSON.stringify({ data: { attributes: { apps: listed } }, type: 'container' }, null, 4) + '\n');
      else ctx.stdout.write(listed);
      return EXIT.ok;
    }
    const app = stringOption(args, 'app');
    if (app !== undefined) {
      const found = await requireApp(image, app, { signal: ctx.signal });
      if (!found.ok) return failWith(ctx, [found.error]);
    }
    const chosen = INSPECT_PARTS.filter((p) => boolOption(args, p));
    const parts = chosen.length > 0 ? chosen : (['labels'] as const);
    const attrs = app !== undefined ? await inspectApp(image, app, parts, ctx.signal) : await inspectImage(image, parts, { signal: ctx.signal });
    if (boolOption(args, 'json')) ctx.stdout.write(JSON.stringify({ data: { attributes: attrs }, type: 'container' }, null, 4) + '\n');
    else ctx.stdout.write(text(attrs, parts));
    return EXIT.ok;
  },
};
