import { stringOption } from './args.js';
import { EXIT, failWith, type Command } from './command.js';
import { requireImage } from './resolve-target-image.js';
import { readImageFile } from '../image/image-files.js';
import { inspectImage } from '../image/inspect-image.js';
import { requireApp } from '../runtime/image-apps.js';

export const command: Command = {
  spec: {
    name: 'run-help',
    summary: "show an image's runscript help (/.singularity.d/runscript.help)",
    usage: '[--app NAME] IMAGE',
    options: [{ name: 'app', type: 'string', value: 'NAME', description: "a SCIF app's help (%apphelp)" }],
    positionals: { min: 1, max: 1 },
  },
  async run(ctx, args) {
    const image = await requireImage(ctx, args.positionals[0]!);
    if (image === undefined) return EXIT.usage;
    const app = stringOption(args, 'app');
    let helpfile: string | null | undefined;
    if (app !== undefined) {
      const found = await requireApp(image, app, { signal: ctx.signal });
      if (!found.ok) return failWith(ctx, [found.error]);
      helpfile = (await readImageFile(image, `/scif/apps/${app}/scif/runscript.help`, { signal: ctx.signal }))?.toString('utf8');
    } else helpfile = (await inspectImage(image, ['helpfile'], { signal: ctx.signal })).helpfile;
    if (!helpfile) {
      ctx.stdout.write(app !== undefined ? `No help sections were defined for app ${app}\n` : 'No help sections were defined for this image\n');
      return EXIT.ok;
    }
    ctx.stdout.write(helpfile.endsWith('\n') ? helpfile : `${helpfile}\n`);
    return EXIT.ok;
  },
};
