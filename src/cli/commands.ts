import type { Command } from './command.js';

/**
 * Every command, in the order `orchestrator --help` lists them. One file per command; add yours
 * here. Loaded lazily so that a no-op `up` pays only for what it uses.
 */
export const COMMANDS: Readonly<Record<string, { summary: string; load: () => Promise<Command> }>> = {};
