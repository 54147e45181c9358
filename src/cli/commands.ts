import type { Command } from './command.js';

/**
 * Every command, in the order `orchestrator --help` lists them. One file per command; add yours
 * here. Loaded lazily so that a no-op `up` pays only for what it uses.
 */
export const COMMANDS: Readonly<Record<string, { summary: string; load: () => Promise<Command> }>> = {
  shell: { summary: 'start a shell in a container', load: async () => (await import('./shell.js')).command },
  exec: { summary: 'run a command in a container', load: async () => (await import('./exec.js')).command },
  run: { summary: "run a container's runscript", load: async () => (await import('./run.js')).command },
  test: { summary: "run a container's test script", load: async () => (await import('./test.js')).command },
  inspect: { summary: "show an image's metadata", load: async () => (await import('./inspect.js')).command },
  'run-help': { summary: "show an image's runscript help", load: async () => (await import('./run-help.js')).command },
};
