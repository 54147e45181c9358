import { boolOption } from './args.js';
import { EXIT, type Command } from './command.js';
import { requireImage } from './resolve-target-image.js';
import { INSPECT_PARTS, inspectImage, type InspectAttributes, type InspectPart } from '../image/inspect-image.js';

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
    usage: '[--json] [--labels|--deffile|--runscript|--test|--environment|--helpfile] IMAGE',
    description:
      "Reads /.singularity.d/ of a sandbox folder, squashfs or ext3 image without running it. Without a part option, shows the labels.\n--json prints Apptainer's envelope {\"data\":{\"attributes\":{...}},\"type\":\"container\"} with null for missing parts.",
    options: [
      { name: 'json', short: 'j', type: 'boolean', description: "print Apptainer's JSON" },
      { name: 'labels', short: 'l', type: 'boolean', description: 'labels (labels.json)' },
      { name: 'deffile', short: 'd', type: 'boolean', description: 'the recipe the image was built from' },
      { name: 'runscript', short: 'r', type: 'boolean', description: 'the runscript' },
      { name: 'test', short: 't', type: 'boolean', description: 'the test script' },
      { name: 'environment', short: 'e', type: 'boolean', description: 'the environment files, in order' },
      { name: 'helpfile', short: 'H', type: 'boolean', description: 'the runscript help' },
    ],
    positionals: { min: 1, max: 1 },
  },
  async run(ctx, args) {
    const image = await requireImage(ctx, args.positionals[0]!);
    if (image === undefined) return EXIT.usage;
    const chosen = INSPECT_PARTS.filter((p) => boolOption(args, p));
    const parts = chosen.length > 0 ? chosen : (['labels'] as const);
    const attrs = await inspectImage(image, parts, { signal: ctx.signal });
    if (boolOption(args, 'json')) ctx.stdout.write(JSON.stringify({ data: { attributes: attrs }, type: 'container' }, null, 4) + '\n');
    else ctx.stdout.write(text(attrs, parts));
    return EXIT.ok;
  },
};
