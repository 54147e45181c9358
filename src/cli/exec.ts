import type { Command } from './command.js';
import { CONTAINER_DESCRIPTION, CONTAINER_OPTIONS, runContainerAction } from './container-action.js';

export const command: Command = {
  spec: {
    name: 'exec',
    summary: 'run a command in a container',
    usage: '[OPTIONS] IMAGE COMMAND [ARGS...]',
    description: CONTAINER_DESCRIPTION,
    options: CONTAINER_OPTIONS,
    positionals: { min: 2 },
    passThroughAfter: 1,
  },
  run: (ctx, args) => runContainerAction(ctx, args, 'exec'),
};
