import { error, type Diagnostic } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { fail, ok, type Result } from '../core/result.js';

export interface OptionSpec {
  /** Long name without dashes: `keep-going`. */
  readonly name: string;
  /** One letter without the dash: `j`. */
  readonly short?: string;
  readonly type: 'boolean' | 'string';
  /** May be given several times; the values are collected in order. */
  readonly multiple?: boolean;
  /** Name of the value in help: `N`, `FILE`. */
  readonly value?: string;
  readonly choices?: readonly string[];
  readonly description: string;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** The synopsis after `orchestrator NAME`: `[TARGET ...] [--json]`. */
  readonly usage: string;
  readonly description?: string;
  readonly options: readonly OptionSpec[];
  readonly positionals: { readonly min: number; readonly max?: number };
  /**
   * After this many positionals, everything else is passed through untouched (exec IMAGE CMD...:
   * the command's own flags are not ours).
   */
  readonly passThroughAfter?: number;
}

export type OptionValue = string | boolean | string[];

export interface ParsedArgs {
  readonly options: Readonly<Record<string, OptionValue | undefined>>;
  readonly positionals: readonly string[];
}

/** Options every command takes. */
export const HELP_OPTION: OptionSpec = { name: 'help', short: 'h', type: 'boolean', description: 'show this help' };

function usageError(spec: CommandSpec, message: string, hint?: string): Diagnostic {
  return error('usage', message, { hint: hint ?? `see 'orchestrator ${spec.name} --help'` });
}

/** One parse under way: the command's option tables and what was set so far. */
interface ParseState {
  readonly spec: CommandSpec;
  readonly all: readonly OptionSpec[];
  readonly byLong: ReadonlyMap<string, OptionSpec>;
  readonly byShort: ReadonlyMap<string, OptionSpec>;
  readonly options: Record<string, OptionValue | undefined>;
}

/** Sets (or, for a repeatable option, adds) one value; a value outside the option's choices is an error. */
function setOption(st: ParseState, o: OptionSpec, value: string | boolean): Diagnostic | undefined {
  if (typeof value === 'string' && o.choices && !o.choices.includes(value)) {
    return usageError(st.spec, `invalid value '${value}' for --${o.name}: expected one of ${o.choices.join(', ')}`, didYouMeanHint(value, o.choices));
  }
  if (o.multiple) {
    const prev = st.options[o.name];
    st.options[o.name] = [...(Array.isArray(prev) ? prev : []), String(value)];
  } else st.options[o.name] = value;
  return undefined;
}

/** `--name`, `--name=value` or `--name value` at argv[i]: the index of the last word it took, or why not. */
function parseLong(st: ParseState, argv: readonly string[], i: number): number | Diagnostic {
  const arg = argv[i]!;
  const eq = arg.indexOf('=');
  const name = arg.slice(2, eq === -1 ? undefined : eq);
  const o = st.byLong.get(name);
  if (!o) {
    const hint = didYouMeanHint(`--${name}`, st.all.map((x) => `--${x.name}`));
    return usageError(st.spec, `unknown option '--${name}' for '${st.spec.name}'`, hint);
  }
  if (o.type === 'boolean') {
    if (eq !== -1) return usageError(st.spec, `option '--${name}' takes no value`);
    return setOption(st, o, true) ?? i;
  }
  const value = eq !== -1 ? arg.slice(eq + 1) : argv[i + 1];
  if (value === undefined) return usageError(st.spec, `option '--${name}' needs a value (${o.value ?? 'VALUE'})`);
  return setOption(st, o, value) ?? (eq !== -1 ? i : i + 1);
}

/** `-x`, bundled boolean shorts (`-it`), `-xVALUE` or `-x value` at argv[i]: as parseLong. */
function parseShorts(st: ParseState, argv: readonly string[], i: number): number | Diagnostic {
  const arg = argv[i]!;
  for (let k = 1; k < arg.length; k++) {
    const letter = arg[k]!;
    const o = st.byShort.get(letter);
    if (!o) return usageError(st.spec, `unknown option '-${letter}' for '${st.spec.name}'`);
    if (o.type === 'boolean') {
      setOption(st, o, true);
      continue;
    }
    const rest = arg.slice(k + 1);
    if (rest === '' && i + 1 >= argv.length) return usageError(st.spec, `option '-${letter}' needs a value (${o.value ?? 'VALUE'})`);
    return setOption(st, o, rest === '' ? argv[i + 1]! : rest) ?? (rest === '' ? i + 1 : i);
  }
  return i;
}

/**
 * Parses argv for one command: `--name value`, `--name=value`, `-x value`, `-xVALUE`, bundled
 * boolean shorts (`-it`), `--` ending options. Unknown options are errors with a did-you-mean.
 */
export function parseArgs(spec: CommandSpec, argv: readonly string[]): Result<ParsedArgs> {
  const all = [...spec.options, HELP_OPTION];
  const st: ParseState = {
    spec,
    all,
    byLong: new Map(all.map((o) => [o.name, o])),
    byShort: new Map(all.filter((o) => o.short !== undefined).map((o) => [o.short!, o])),
    options: {},
  };
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (spec.passThroughAfter !== undefined && positionals.length >= spec.passThroughAfter) {
      positionals.push(...argv.slice(i));
      break;
    }
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    const isOption = arg.startsWith('-') && arg.length > 1;
    if (!isOption) {
      positionals.push(arg);
      continue;
    }
    const last = arg.startsWith('--') ? parseLong(st, argv, i) : parseShorts(st, argv, i);
    if (typeof last !== 'number') return fail(last);
    i = last;
  }
  const { options } = st;
  if (options['help'] === true) return ok({ options, positionals });
  const { min, max } = spec.positionals;
  if (positionals.length < min) {
    return fail(usageError(spec, `'${spec.name}' needs ${min === 1 ? 'an argument' : `${min} arguments`}: orchestrator ${spec.name} ${spec.usage}`));
  }
  if (max !== undefined && spec.passThroughAfter === undefined && positionals.length > max) {
    return fail(usageError(spec, `too many arguments for '${spec.name}': '${positionals[max]}'`));
  }
  return ok({ options, positionals });
}

export function helpText(spec: CommandSpec): string {
  const lines = [`Usage: orchestrator ${spec.name} ${spec.usage}`.trimEnd(), '', spec.summary];
  if (spec.description) lines.push('', spec.description);
  const opts = [...spec.options, HELP_OPTION];
  if (opts.length > 0) {
    lines.push('', 'Options:');
    const rows = opts.map((o) => {
      const flag = `${o.short ? `-${o.short}, ` : '    '}--${o.name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
      return [flag, o.description + (o.choices ? ` (${o.choices.join('|')})` : '')] as const;
    });
    const width = Math.max(...rows.map(([f]) => f.length));
    for (const [f, d] of rows) lines.push(`  ${f.padEnd(width)}  ${d}`);
  }
  return lines.join('\n') + '\n';
}

export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const v = args.options[name];
  return typeof v === 'string' ? v : undefined;
}

export function boolOption(args: ParsedArgs, name: string): boolean {
  return args.options[name] === true;
}

export function listOption(args: ParsedArgs, name: string): string[] {
  const v = args.options[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}
