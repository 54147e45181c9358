import type { Command } from './command.js';
import { CONTAINER_DESCRIPTION, CONTAINER_OPTIONS, runContainerAction } from './container-action.js';

export const command: Command = {
  spec: {
    name: 'test',
    summary: "run a container's test script",
    usage: '[OPTIONS] IMAGE [ARGS...]',
    description: CONTAINER_DESCRIPTION,
    options: CONTAINER_OPTIONS,
    positionals: { min: 1 },
    passThroughAfter: 1,
  },
  run: (ctx, args) => runContainerAction(ctx, args, 'test'),
};
