import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { sha256Digest } from '../core/digest.js';
import { isIgnored, parseIgnoreRules, type IgnoreRule } from '../core/ignore-rules.js';

/** The ignore file of a project, beside its manifest (`.dockerignore`'s syntax: core/ignore-rules.ts). */
export const IGNORE_FILE = '.orchestratorignore';

/**
 * What a build never reads as an input inside folders and glob matches (`%files` sources, `inputs`
 * globs and folders, and their digests): the project's state folder, the cache folder, every
 * target's output — always — and what `.orchestratorignore` lists. A path named as it is in a
 * recipe or the manifest is read as named; the filter applies to what is found in and through it.
 */
export class InputFilter {
  /** Identifies the filter in digests: the rules and the always-ignored paths. */
  readonly id: string;

  private constructor(
    readonly projectDir: string,
    readonly rules: readonly IgnoreRule[],
    /** Absolute paths ignored with everything below them. */
    readonly always: readonly string[],
    /** Whether the project has an ignore file. */
    readonly hasFile: boolean,
  ) {
    this.id = sha256Digest(JSON.stringify({ rules: rules.map((r) => `${r.negate ? '!' : ''}${r.pattern}`), always: [...always].sort() }));
  }

  /** Reads the project's ignore file (none is no rules). */
  static load(options: { projectDir: string; always: readonly string[] }): InputFilter {
    let text: string | undefined;
    try {
      text = readFileSync(join(options.projectDir, IGNORE_FILE), 'utf8');
    } catch {
      text = undefined;
    }
    const always = options.always.map((p) => p.replace(/\/+$/, ''));
    return new InputFilter(options.projectDir, text === undefined ? [] : parseIgnoreRules(text), always, text !== undefined);
  }

  /** Whether some line re-includes (`!`): then an ignored folder must still be looked into. */
  get hasNegation(): boolean {
    return this.rules.some((r) => r.negate);
  }

  /**
   * Whether an absolute path is one of the always-ignored (state, cache, outputs) or inside one:
   * nothing below it is ever read. So is a folder of the project that holds nothing else (`build/`
   * with the outputs in it, or made empty for them): it exists only because of the builds.
   */
  ignoresAlways(abs: string): boolean {
    if (this.always.some((a) => abs === a || abs.startsWith(`${a}/`))) return true;
    if (!abs.startsWith(`${this.projectDir}/`) || !this.always.some((a) => a.startsWith(`${abs}/`))) return false;
    try {
      return readdirSync(abs).every((name) => this.ignoresAlways(join(abs, name)));
    } catch {
      return false;
    }
  }

  /** Whether an absolute path is left out. */
  ignores(abs: string): boolean {
    if (this.ignoresAlways(abs)) return true;
    const rel = relative(this.projectDir, abs);
    if (rel === '' || rel.startsWith('..') || rel.startsWith(sep)) return false;
    return isIgnored(this.rules, rel.split(sep).join('/'));
  }

  /** Whether anything at or below the folder `abs` may be left out (so a plain copy of it would not do). */
  mayIgnoreBelow(abs: string): boolean {
    const inside = (a: string, b: string) => a === b || a.startsWith(`${b}/`);
    if (this.always.some((a) => inside(a, abs) || inside(abs, a))) return true;
    return this.rules.length > 0 && (inside(abs, this.projectDir) || inside(this.projectDir, abs));
  }
}
