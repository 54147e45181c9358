import { constants } from 'node:os';
import { error } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { boolOption, stringOption, type ParsedArgs } from './args.js';
import { EXIT, failWith, type Command, type CommandContext } from './command.js';
import { CONTAINER_OPTIONS, prepareSession } from './container-action.js';
import { INSTANCE_NAME, instanceDir, listInstances, startInstance, stopInstance, type InstanceRecord } from '../runtime/instances.js';

const SUBCOMMANDS = ['start', 'list', 'stop'] as const;

async function start(ctx: CommandContext, args: ParsedArgs, dir: string): Promise<number> {
  const [, imageArg, name, ...rest] = args.positionals;
  if (imageArg === undefined || name === undefined) {
    return failWith(ctx, [error('usage', "'instance start' needs an image and a name", { hint: 'orchestrator instance start [OPTIONS] IMAGE NAME [ARGS...]' })]);
  }
  if (!INSTANCE_NAME.test(name)) {
    return failWith(ctx, [error('usage', `'${name}' is not an instance name`, { hint: 'use letters, digits, ., _ and -, starting with a letter or digit' })]);
  }
  const session = await prepareSession(ctx, args, imageArg);
  if (typeof session === 'number') return session;
  if (session.instance !== undefined) return failWith(ctx, [error('usage', "'instance start' needs an image, not an instance")]);
  if (session.options.mode === 'writable') {
    return failWith(ctx, [error('usage', '--writable is not supported for instances', { hint: 'changes of an instance go to a tmpfs (--writable-tmpfs), or use --read-only' })]);
  }
  const r = await startInstance(dir, { name, container: { ...session.options, args: rest }, signal: ctx.signal });
  if (!r.ok) return failWith(ctx, [r.error]);
  ctx.stderr.write(`instance ${name} started (pid ${r.value.pid}); its output goes to ${r.value.logOut} and ${r.value.logErr}\n`);
  return EXIT.ok;
}

function list(ctx: CommandContext, args: ParsedArgs, dir: string): number {
  const live = listInstances(dir);
  if (boolOption(args, 'json')) {
    const instances = live.map((r) => ({ instance: r.name, pid: r.pid, img: r.image, ip: '', logOutPath: r.logOut, logErrPath: r.logErr }));
    ctx.stdout.write(JSON.stringify({ instances }, null, 4) + '\n');
    return EXIT.ok;
  }
  const rows = live.map((r) => [r.name, String(r.pid), r.image] as const);
  const w = [13, 7].map((min, i) => Math.max(min, ...rows.map((row) => row[i]!.length)));
  ctx.stdout.write(`${'INSTANCE NAME'.padEnd(w[0]!)}  ${'PID'.padEnd(w[1]!)}  IMAGE\n`);
  for (const row of rows) ctx.stdout.write(`${row[0].padEnd(w[0]!)}  ${row[1].padEnd(w[1]!)}  ${row[2]}\n`);
  return EXIT.ok;
}

async function stop(ctx: CommandContext, args: ParsedArgs, dir: string): Promise<number> {
  const name = args.positionals[1];
  const all = boolOption(args, 'all');
  if ((name === undefined) === !all) {
    return failWith(ctx, [error('usage', all ? '--all and a NAME cannot be combined' : "'instance stop' needs a NAME or --all", { hint: 'orchestrator instance stop NAME|--all' })]);
  }
  const sigText = (stringOption(args, 'signal') ?? 'TERM').toUpperCase().replace(/^SIG/, '');
  const signal = `SIG${sigText}` as NodeJS.Signals;
  if (!(signal in constants.signals)) {
    return failWith(ctx, [error('usage', `--signal '${stringOption(args, 'signal')}' is not a signal`, { hint: 'give a name: TERM, INT, HUP, KILL, USR1' })]);
  }
  const timeoutText = stringOption(args, 'timeout') ?? '10';
  const timeout = Number(timeoutText);
  if (!/^\d+$/.test(timeoutText)) return failWith(ctx, [error('usage', `--timeout '${timeoutText}' is not a whole number of seconds`)]);
  const live = listInstances(dir);
  let targets: InstanceRecord[];
  if (all) targets = live;
  else {
    const found = live.find((r) => r.name === name);
    if (!found) {
      return failWith(ctx, [
        error('instance-not-found', `no instance named '${name}' is running`, {
          hint: didYouMeanHint(name!, live.map((r) => r.name)) ?? (live.length > 0 ? `running: ${live.map((r) => r.name).join(', ')}` : 'no instance is running'),
        }),
      ]);
    }
    targets = [found];
  }
  const failures = [];
  for (const record of targets) {
    const r = await stopInstance(dir, record, { signal, timeoutMs: timeout * 1000 });
    if (!r.ok) failures.push(r.error);
    else ctx.stderr.write(`instance ${record.name} stopped${r.value.killed ? ` (killed after ${timeout} s)` : ''}\n`);
  }
  return failures.length > 0 ? failWith(ctx, failures) : EXIT.ok;
}

export const command: Command = {
  spec: {
    name: 'instance',
    summary: 'start, list and stop instances (a startscript running in the background)',
    usage: 'start [OPTIONS] IMAGE NAME [ARGS...] | list [--json] | stop [--signal SIG] [--timeout S] NAME|--all',
    description: [
      "'instance start' runs the image's startscript (%startscript) in the background, as process 2 of a new pid",
      "namespace (process 1 reaps, as Apptainer's sinit does), with its output in NAME.out and NAME.err beside its",
      "record. The instance lives until it is stopped or its startscript exits. 'exec|shell|run instance://NAME'",
      "join it. 'instance stop' sends SIGTERM (--signal), and SIGKILL after --timeout seconds (default 10); every",
      'process of the instance is gone when it returns. Records live in $XDG_RUNTIME_DIR/orchestrator-instances',
      "(else ~/.orchestrator/instances), one set per user; 'instance list' removes those of dead instances.",
    ].join('\n'),
    options: [
      ...CONTAINER_OPTIONS,
      { name: 'json', short: 'j', type: 'boolean', description: "list: Apptainer's JSON" },
      { name: 'all', short: 'a', type: 'boolean', description: 'stop: every instance of the caller' },
      { name: 'signal', short: 's', type: 'string', value: 'SIG', description: 'stop: the signal to send first (default TERM)' },
      { name: 'timeout', short: 't', type: 'string', value: 'S', description: 'stop: seconds before SIGKILL (default 10)' },
    ],
    positionals: { min: 1 },
    passThroughAfter: 3,
  },
  async run(ctx, args) {
    const sub = args.positionals[0]!;
    if (sub !== 'start' && sub !== 'list' && sub !== 'stop') {
      return failWith(ctx, [error('usage', `unknown 'instance' subcommand '${sub}'`, { hint: didYouMeanHint(sub, SUBCOMMANDS) ?? `expected one of ${SUBCOMMANDS.join(', ')}` })]);
    }
    const dir = instanceDir(ctx.env);
    if (!dir.ok) return failWith(ctx, [dir.error]);
    if (sub === 'start') return start(ctx, args, dir.value);
    if (sub === 'list') return list(ctx, args, dir.value);
    return stop(ctx, args, dir.value);
  },
};
