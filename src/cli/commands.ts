import type { Command } from './command.js';

/**
 * Every command, in the order `orchestrator --help` lists them. One file per command; add yours
 * here. Loaded lazily so that a no-op `up` pays only for what it uses.
 */
export const COMMANDS: Readonly<Record<string, { summary: string; load: () => Promise<Command> }>> = {
  pull: { summary: 'fetch and verify an image into the cache', load: async () => (await import('./pull.js')).command },
  cache: { summary: 'list the cache and its size', load: async () => (await import('./cache.js')).command },
};
