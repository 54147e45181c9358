import { EXIT, type Command } from './command.js';
import { requireImage } from './resolve-target-image.js';
import { inspectImage } from '../image/inspect-image.js';

export const command: Command = {
  spec: {
    name: 'run-help',
    summary: "show an image's runscript help (/.singularity.d/runscript.help)",
    usage: 'IMAGE',
    options: [],
    positionals: { min: 1, max: 1 },
  },
  async run(ctx, args) {
    const image = await requireImage(ctx, args.positionals[0]!);
    if (image === undefined) return EXIT.usage;
    const { helpfile } = await inspectImage(image, ['helpfile'], { signal: ctx.signal });
    if (!helpfile) {
      ctx.stdout.write('No help sections were defined for this image\n');
      return EXIT.ok;
    }
    ctx.stdout.write(helpfile.endsWith('\n') ? helpfile : `${helpfile}\n`);
    return EXIT.ok;
  },
};
