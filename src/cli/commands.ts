import type { Command } from './command.js';

/**
 * Every command, in the order `orchestrator --help` lists them. One file per command; add yours
 * here. Loaded lazily so that a no-op `up` pays only for what it uses.
 */
export const COMMANDS: Readonly<Record<string, { summary: string; load: () => Promise<Command> }>> = {
  up: { summary: 'build what is stale, in dependency order and in parallel', load: async () => (await import('./up.js')).command },
  build: { summary: 'build one image from a recipe, image or registry (singularity build)', load: async () => (await import('./build.js')).command },
  plan: { summary: 'show the targets to build, in build order', load: async () => (await import('./plan.js')).command },
  graph: { summary: 'print the dependency graph of the targets', load: async () => (await import('./graph.js')).command },
  config: { summary: 'print the manifest with matrix, inherits and variables expanded', load: async () => (await import('./config.js')).command },
  validate: { summary: 'check the manifest and recipes', load: async () => (await import('./validate.js')).command },
  clean: { summary: 'remove outputs and their recorded state', load: async () => (await import('./clean.js')).command },
  pull: { summary: 'fetch and verify an image into the cache', load: async () => (await import('./pull.js')).command },
  push: { summary: 'publish an output or image to a registry as an OCI image', load: async () => (await import('./push.js')).command },
  lock: { summary: 'pin registry tags to digests in orchestrator.lock', load: async () => (await import('./lock.js')).command },
  cache: { summary: 'list, measure or prune the cache', load: async () => (await import('./cache.js')).command },
  shell: { summary: 'start a shell in a container', load: async () => (await import('./shell.js')).command },
  exec: { summary: 'run a command in a container', load: async () => (await import('./exec.js')).command },
  run: { summary: "run a container's runscript", load: async () => (await import('./run.js')).command },
  test: { summary: "run a container's test script", load: async () => (await import('./test.js')).command },
  inspect: { summary: "show an image's metadata", load: async () => (await import('./inspect.js')).command },
  sif: { summary: 'list the objects, show the header or verify the signatures of a SIF image', load: async () => (await import('./sif.js')).command },
  instance: { summary: 'start, list and stop instances (startscripts in the background)', load: async () => (await import('./instance.js')).command },
  'run-help': { summary: "show an image's runscript help", load: async () => (await import('./run-help.js')).command },
};
