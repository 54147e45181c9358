import { resolve } from 'node:path';
import { isatty } from 'node:tty';
import type { ParsedArgs, OptionSpec } from './args.js';
import { boolOption, listOption, stringOption } from './args.js';
import { EXIT, type CommandContext, failWith } from './command.js';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { requireImage } from './resolve-target-image.js';
import type { ContainerAction } from '../runtime/action-script.js';
import { parseBindSpecs, type BindSpec } from '../runtime/bind-spec.js';
import { containerEnvironment, runContainer, type ContainerMode, type ContainerOptions } from '../runtime/container-session.js';
import { defaultCacheDir } from '../runtime/cache-dir.js';
import { holdWritableLock } from '../runtime/writable-lock.js';
import { readEnvFile } from '../runtime/env-file.js';
import { requireApp } from '../runtime/image-apps.js';


/** The options shell/exec/run/test share (docs/ARCHITECTURE.md, Runtime). */
export const CONTAINER_OPTIONS: readonly OptionSpec[] = [
  { name: 'writable', short: 'w', type: 'boolean', description: 'changes persist (sandbox folders and ext3 images; not squashfs)' },
  { name: 'writable-tmpfs', type: 'boolean', description: 'changes go to a tmpfs and vanish at exit (the default)' },
  { name: 'read-only', type: 'boolean', description: 'a strictly read-only container: writes fail with EROFS' },
  { name: 'bind', short: 'B', type: 'string', multiple: true, value: 'SRC[:DST[:ro|rw]]', description: 'bind a host path (repeatable, comma lists; also SINGULARITY_BINDPATH, APPTAINER_BIND)' },
  { name: 'contain', short: 'c', type: 'boolean', description: 'minimal /dev, empty /tmp, /var/tmp and home, no cwd' },
  { name: 'containall', short: 'C', type: 'boolean', description: '--contain, --cleanenv and a new pid namespace' },
  { name: 'cleanenv', short: 'e', type: 'boolean', description: 'do not pass the host environment' },
  { name: 'pwd', type: 'string', value: 'DIR', description: 'working folder inside the container' },
  { name: 'home', short: 'H', type: 'string', value: 'SRC[:DST]', description: 'home folder to bind (default: $HOME)' },
  { name: 'app', type: 'string', value: 'NAME', description: "the SCIF app to run: its runscript/test, environment and folders (see 'inspect --list-apps')" },
  { name: 'env', type: 'string', multiple: true, value: 'KEY=VALUE', description: 'set a variable inside (repeatable, comma lists; like SINGULARITYENV_KEY)' },
  { name: 'env-file', type: 'string', value: 'FILE', description: 'set the variables a file of KEY=VALUE lines assigns (read by bash, as Apptainer reads it; also APPTAINER_ENV_FILE)' },
  { name: 'legacy-env', type: 'boolean', description: "Singularity 2.4's environment rules: the host's PATH and LD_LIBRARY_PATH pass in" },
];

/**
 * `--env` values as Apptainer's flag reads them: comma-separated KEY=VALUE items, a piece without
 * `=` belonging to the value before it (`--env A=1,2` sets A to `1,2`).
 */
export function parseEnvOption(values: readonly string[]): Result<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const text of values) {
    let last: string | undefined;
    for (const piece of text.split(',')) {
      const eq = piece.indexOf('=');
      if (eq === -1 && last !== undefined) {
        out[last] += `,${piece}`;
        continue;
      }
      const key = piece.slice(0, eq);
      if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
        return fail(error('usage', `--env: '${piece}' is not KEY=VALUE`, { hint: 'give --env NAME=VALUE, NAME of letters, digits and _' }));
      }
      out[key] = piece.slice(eq + 1);
      last = key;
    }
  }
  return ok(out);
}

export const CONTAINER_DESCRIPTION = `IMAGE is a sandbox folder, a squashfs image (.simg), an ext3 image (.img) or a SIF image (.sif),
with or without the '#!/usr/bin/env run-singularity' line.

Exit status: the container command's own status (128+n when it died of signal n); 2 for bad input
found before the container starts (a missing or unrecognized image, a bind source that does not
exist or whose destination would have to be created inside another bind, --writable on
squashfs); 255 when the starter itself failed (one line on stderr says which
system call on which path); 1 for other failures.`;

function containerMode(ctx: CommandContext, args: ParsedArgs): ContainerMode | Diagnostic {
  const chosen = (['writable', 'writable-tmpfs', 'read-only'] as const).filter((n) => boolOption(args, n));
  if (chosen.length > 1) return error('usage', `--${chosen[0]} and --${chosen[1]} cannot be used together`);
  void ctx;
  if (chosen[0] === 'writable') return 'writable';
  if (chosen[0] === 'read-only') return 'read-only';
  return 'ephemeral';
}

function ignoreInterrupts(): () => void {
  const saved = process.listeners('SIGINT');
  process.removeAllListeners('SIGINT');
  const noop = (): void => undefined;
  process.on('SIGINT', noop);
  return () => {
    process.off('SIGINT', noop);
    for (const l of saved) process.on('SIGINT', l);
  };
}

/** What the environment of a command joining an instance is made of. */
type JoinEnv = Pick<ContainerOptions, 'hostEnv' | 'cleanEnv' | 'legacyEnv' | 'userEnv' | 'envFile' | 'app'>;

/** `exec|shell|run instance://NAME`: the action inside a running instance (docs/ARCHITECTURE.md, Runtime). */
async function joinAction(ctx: CommandContext, name: string, envOptions: JoinEnv, action: 'exec' | 'run' | 'shell', rest: readonly string[]): Promise<number> {
  const { findInstance, instanceDir, joinInstance } = await import('../runtime/instances.js');
  const dir = instanceDir(ctx.env);
  if (!dir.ok) return failWith(ctx, [dir.error]);
  const record = findInstance(dir.value, name);
  if (!record.ok) return failWith(ctx, [record.error]);
  const env = containerEnvironment(envOptions, { home: ctx.env['HOME'] ?? '/', container: record.value.image });
  const r = await joinInstance(record.value, { action, args: rest, env, cwd: ctx.cwd, stdio: 'inherit' });
  if (!r.ok) return failWith(ctx, [r.error]);
  return r.value.exitCode;
}

/** A session as the command line describes it, before the action is chosen. */
export type SessionOptions = Omit<ContainerOptions, 'action' | 'args' | 'stdio' | 'detached' | 'forwardSignals'>;

/**
 * Reads the options every container command shares (binds, home, environment, mode, app) and
 * the IMAGE argument (`instance://NAME` is returned as is, for the caller to join). A number is
 * the exit status after printing why the input is bad.
 */
export async function prepareSession(
  ctx: CommandContext,
  args: ParsedArgs,
  imageArg: string,
): Promise<number | { readonly instance: string; readonly env: JoinEnv } | { readonly instance?: undefined; readonly options: SessionOptions }> {
  const mode = containerMode(ctx, args);
  if (typeof mode !== 'string') {
    return failWith(ctx, [mode]);
  }
  const binds: BindSpec[] = [];
  const sources: [string, string][] = [];
  for (const name of ['SINGULARITY_BINDPATH', 'APPTAINER_BINDPATH', 'APPTAINER_BIND'] as const) {
    const v = ctx.env[name];
    if (v) sources.push([v, name]);
  }
  for (const v of listOption(args, 'bind')) sources.push([v, '--bind']);
  for (const [text, origin] of sources) {
    const parsed = parseBindSpecs(text, { cwd: ctx.cwd, origin });
    if (!parsed.ok) {
      return failWith(ctx, [parsed.error]);
    }
    binds.push(...parsed.value);
  }
  let home: { source: string; target: string } | undefined;
  const homeText = stringOption(args, 'home');
  if (homeText !== undefined) {
    const [src, dst] = homeText.split(':') as [string, string | undefined];
    const source = resolve(ctx.cwd, src);
    home = { source, target: dst !== undefined && dst !== '' ? resolve('/', dst) : source };
  }
  const userEnv = parseEnvOption(listOption(args, 'env'));
  if (!userEnv.ok) return failWith(ctx, [userEnv.error]);
  // APPTAINER_ENV_FILE as Apptainer has it; also the way round Node 20, which takes a script's
  // `--env-file` argument as its own (nodejs/node#54232).
  const envFilePath = stringOption(args, 'env-file') ?? ctx.env['APPTAINER_ENV_FILE'] ?? ctx.env['SINGULARITY_ENV_FILE'];
  let envFile: Record<string, string> | undefined;
  if (envFilePath !== undefined) {
    const read = readEnvFile(resolve(ctx.cwd, envFilePath));
    if (!read.ok) return failWith(ctx, [read.error]);
    envFile = read.value;
  }
  const containAll = boolOption(args, 'containall');
  const envOptions = {
    hostEnv: ctx.env,
    cleanEnv: containAll || boolOption(args, 'cleanenv'),
    legacyEnv: boolOption(args, 'legacy-env'),
    userEnv: userEnv.value,
    ...(envFile ? { envFile } : {}),
  };
  const app = stringOption(args, 'app');
  // In an instance, the image's 95-apps.sh says when the app is not there.
  if (imageArg.startsWith('instance://')) return { instance: imageArg.slice('instance://'.length), env: { ...envOptions, ...(app !== undefined ? { app } : {}) } };
  const image = await requireImage(ctx, imageArg);
  if (image === undefined) return EXIT.usage;
  if (app !== undefined) {
    const found = await requireApp(image, app, { signal: ctx.signal });
    if (!found.ok) return failWith(ctx, [found.error]);
  }
  const pwd = stringOption(args, 'pwd');
  return {
    options: {
      root: { kind: 'image', image },
      mode,
      binds,
      contain: containAll || boolOption(args, 'contain'),
      pidNamespace: containAll,
      ...(pwd !== undefined ? { pwd } : {}),
      ...(home ? { home } : {}),
      ...envOptions,
      ...(app !== undefined ? { app } : {}),
      cwd: ctx.cwd,
      cacheDir: defaultCacheDir(ctx.env),
    },
  };
}

/** Runs one of the four actions for the CLI. */
export async function runContainerAction(ctx: CommandContext, args: ParsedArgs, action: Exclude<ContainerAction, 'raw' | 'start'>): Promise<number> {
  const [imageArg, ...rest] = args.positionals;
  const session = await prepareSession(ctx, args, imageArg!);
  if (typeof session === 'number') return session;
  if (session.instance !== undefined) {
    if (action === 'test') return failWith(ctx, [error('usage', "'test' does not take an instance", { hint: 'give the image: orchestrator test IMAGE' })]);
    return joinAction(ctx, session.instance, session.env, action, rest);
  }
  const { options } = session;
  const image = options.root.kind === 'image' ? options.root.image : undefined;
  // On a terminal the session stays in the foreground process group and gets the terminal's
  // signals itself; this process ignores SIGINT meanwhile (a shell's Ctrl-C is the shell's).
  const interactive = isatty(0);
  // A writable session keeps `up` and `clean` from replacing its image under it, while it runs.
  const lock = options.mode === 'writable' && image && image.format !== 'squashfs' ? holdWritableLock(image.path, action) : undefined;
  const restore = interactive ? ignoreInterrupts() : (): void => undefined;
  const result = await runContainer({ ...options, action, args: rest, stdio: 'inherit', detached: !interactive, forwardSignals: true });
  if (interactive) restore();
  lock?.release();
  if (!result.ok) {
    return failWith(ctx, [result.error]);
  }
  return result.value.exitCode;
}
