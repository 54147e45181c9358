import { spawn, type StdioOptions } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { constants } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { error } from '../core/diagnostic.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { fail, ok, type Result } from '../core/result.js';
import { actionCommand, SHELL_CHOICE, type ContainerAction } from './action-script.js';
import { planContainer, type ContainerOptions } from './container-session.js';
import { sessionDir } from './session-dir.js';
import { starterArgv, starterPath, type StarterExit } from './starter.js';

/** What `instance list` shows and `instance stop` and `instance://NAME` need (one JSON file per instance). */
export interface InstanceRecord {
  readonly name: string;
  /** The outer starter (signals go here; its death ends the instance). */
  readonly pid: number;
  /** The starter's start time in clock ticks since boot (/proc/PID/stat field 22): a reused pid is not it. */
  readonly startTime: number;
  readonly image: string;
  readonly uid: number;
  readonly logOut: string;
  readonly logErr: string;
  /** ISO 8601. */
  readonly started: string;
}

/** Names as Apptainer allows them. */
export const INSTANCE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function privateDir(path: string, uid: number): boolean {
  try {
    const st = lstatSync(path);
    return st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/**
 * Where the caller's instance records and logs live: `$XDG_RUNTIME_DIR/orchestrator-instances`
 * when that folder is the caller's own (gone at logout and reboot, as the instances are), else
 * `$HOME/.orchestrator/instances` (records of dead instances are swept by `instance list`).
 */
export function instanceDir(env: Readonly<Record<string, string | undefined>>, uid: number = process.getuid?.() ?? 0): Result<string> {
  const runtime = env['XDG_RUNTIME_DIR'];
  const home = env['HOME'];
  const base = runtime && isAbsolute(runtime) && privateDir(runtime, uid) ? join(runtime, 'orchestrator-instances') : home && isAbsolute(home) ? join(home, '.orchestrator', 'instances') : undefined;
  if (base === undefined) {
    return fail(error('session-dir-unavailable', 'no folder for instance records: neither XDG_RUNTIME_DIR nor HOME is usable', { hint: 'set XDG_RUNTIME_DIR to a private folder of your own' }));
  }
  try {
    mkdirSync(base, { recursive: true, mode: 0o700 });
  } catch (e) {
    return fail(error('session-dir-unavailable', `cannot create ${base}: ${e instanceof Error ? e.message : String(e)}`, { hint: 'set XDG_RUNTIME_DIR to a private folder of your own' }));
  }
  const st = lstatSync(base);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    return fail(error('session-dir-unavailable', `${base} is not a private folder of uid ${uid}`, { hint: 'remove it, or set XDG_RUNTIME_DIR to a private folder of your own' }));
  }
  return ok(base);
}

/** Field 22 of /proc/PID/stat (start time), undefined when the process is gone. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** Whether the record's starter still runs (same pid, same start time). */
export function instanceAlive(record: InstanceRecord): boolean {
  return processStartTime(record.pid) === record.startTime;
}

/** Direct children of a process (its threads' children). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (text !== '') out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

/** The instance's process 1 (the starter's child in the new pid namespace), as a host pid. */
export function instanceInit(record: InstanceRecord): number | undefined {
  return instanceAlive(record) ? childrenOf(record.pid)[0] : undefined;
}

/** Host pids of every process in the pid namespace of `init` (itself included). */
export function instanceProcesses(init: number): number[] {
  const ns = readlinkOr(`/proc/${init}/ns/pid`);
  return ns === undefined ? [] : processesIn(ns);
}

/** Host pids of every process in a pid namespace (`pid:[INODE]`). */
function processesIn(ns: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/ns/pid`) === ns) out.push(Number(name));
    } catch {
      // gone, or not ours to see
    }
  }
  return out;
}

function recordPath(dir: string, name: string): string {
  return join(dir, `${name}.json`);
}

function readRecord(path: string): InstanceRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as InstanceRecord;
    return typeof r.name === 'string' && Number.isInteger(r.pid) && Number.isInteger(r.startTime) ? r : undefined;
  } catch {
    return undefined;
  }
}

/** The live instances, by name; records of dead ones (a killed starter, a reboot) are removed. */
export function listInstances(dir: string): InstanceRecord[] {
  const out: InstanceRecord[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.json')) continue;
    const record = readRecord(join(dir, file));
    if (record && instanceAlive(record)) out.push(record);
    else rmSync(join(dir, file), { force: true });
  }
  return out;
}

/** A live instance by name, or `instance-not-found` naming the live ones. */
export function findInstance(dir: string, name: string): Result<InstanceRecord> {
  const live = listInstances(dir);
  const found = live.find((r) => r.name === name);
  if (found) return ok(found);
  return fail(
    error('instance-not-found', `no instance named '${name}' is running`, {
      hint: live.length > 0 ? `running: ${live.map((r) => r.name).join(', ')}` : "start one with 'orchestrator instance start IMAGE NAME'",
    }),
  );
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The last lines of a log, for an error message. */
function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-5).join('\n');
  } catch {
    return '';
  }
}

export interface StartInstanceOptions {
  readonly name: string;
  /** The session as `run` would have it; the action is `start`, a pid namespace is forced. */
  readonly container: Omit<ContainerOptions, 'action' | 'pidNamespace' | 'stdio' | 'detached' | 'forwardSignals'>;
  readonly signal?: AbortSignal;
}

/**
 * Starts an instance: the starter in a new pid namespace (its process 1 reaps, as Apptainer's
 * sinit does; the startscript is its child), detached from this process, under a small /bin/sh
 * that waits for it (the starter dies with its parent, so the parent must outlive the CLI), with
 * stdout and stderr in `NAME.out` and `NAME.err`. Returns once the startscript has been started
 * (the mounts are then in place), or the starter's failure with the end of its log.
 */
export async function startInstance(dir: string, options: StartInstanceOptions): Promise<Result<InstanceRecord>> {
  const { name } = options;
  const existing = listInstances(dir).find((r) => r.name === name);
  if (existing) {
    return fail(error('instance-exists', `an instance named '${name}' is already running (pid ${existing.pid}, ${existing.image})`, { hint: `stop it first: orchestrator instance stop ${name}` }));
  }
  const uid = process.getuid?.() ?? 0;
  const session = sessionDir(options.container.hostEnv, uid);
  if (!session.ok) return session;
  const plan = await planContainer({ ...options.container, action: 'start', pidNamespace: true }, session.value);
  if (!plan.ok) return plan;
  const logOut = join(dir, `${name}.out`);
  const logErr = join(dir, `${name}.err`);
  const pidFile = join(dir, `${name}.pid`);
  rmSync(pidFile, { force: true });
  const out = openSync(logOut, 'a', 0o600);
  const err = openSync(logErr, 'a', 0o600);
  const image = options.container.root.kind === 'image' ? options.container.root.image.path : '';
  try {
    // An `&` job of a non-interactive sh ignores SIGINT and SIGQUIT; env puts them back to their
    // default, so `instance stop --signal INT` reaches the startscript.
    const child = spawn('/bin/sh', ['-c', 'p=$1; shift; env --default-signal=INT,QUIT "$@" </dev/null & echo $! > "$p"; wait $!', 'orchestrator-instance', pidFile, starterPath(), ...starterArgv(plan.value)], {
      detached: true,
      stdio: ['ignore', out, err],
    });
    child.unref();
    const supervisor = child.pid;
    if (supervisor === undefined) return fail(error('instance-start-failed', `could not start /bin/sh for instance '${name}'`));
    // Wait for the startscript: the starter's process 1 forks it after the mounts and the pivot.
    for (;;) {
      if (options.signal?.aborted) {
        // Nothing is left running without a record: the supervisor's group goes (the starter with it).
        try {
          process.kill(-supervisor, 'SIGKILL');
        } catch {
          // gone
        }
        return fail(error('interrupted', `instance start ${name}: interrupted`));
      }
      const pidText = (() => {
        try {
          return readFileSync(pidFile, 'utf8').trim();
        } catch {
          return '';
        }
      })();
      const pid = Number(pidText);
      if (pidText !== '' && Number.isInteger(pid)) {
        const startTime = processStartTime(pid);
        const init = childrenOf(pid)[0];
        if (startTime === undefined) {
          const log = tail(logErr);
          return fail(error('instance-start-failed', `instance '${name}' ended while starting${log ? `:\n${log}` : ''}`, { hint: `its output is in ${logOut} and ${logErr}` }));
        }
        if (init !== undefined && childrenOf(init).length > 0) {
          const record: InstanceRecord = { name, pid, startTime, image, uid, logOut, logErr, started: new Date().toISOString() };
          await writeFileAtomic(recordPath(dir, name), JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
          return ok(record);
        }
      } else if (processStartTime(supervisor) === undefined) {
        return fail(error('instance-start-failed', `instance '${name}' could not be started: ${tail(logErr)}`, { hint: `its output is in ${logErr}` }));
      }
      await sleep(20);
    }
  } finally {
    closeSync(out);
    closeSync(err);
    rmSync(pidFile, { force: true });
  }
}

/**
 * Stops an instance: `signal` to the starter (it passes it to process 1, which passes it to the
 * startscript); after `timeoutMs` SIGKILL, which ends process 1 and with it, by the kernel, every
 * process of the pid namespace. Returns once none of them is left, and removes the record.
 */
export async function stopInstance(dir: string, record: InstanceRecord, options: { signal: NodeJS.Signals; timeoutMs: number }): Promise<Result<{ killed: boolean }>> {
  const init = instanceInit(record);
  const ns = init !== undefined ? readlinkOr(`/proc/${init}/ns/pid`) : undefined;
  const send = (sig: NodeJS.Signals): void => {
    try {
      if (instanceAlive(record)) process.kill(record.pid, sig);
    } catch {
      // gone
    }
  };
  send(options.signal);
  const started = Date.now();
  let killed = false;
  const gone = (): boolean => !instanceAlive(record) && (ns === undefined || processesIn(ns).length === 0);
  for (;;) {
    if (gone()) break;
    if (!killed && Date.now() - started >= options.timeoutMs) {
      killed = true;
      send('SIGKILL');
      if (init !== undefined) {
        try {
          process.kill(init, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    if (killed && Date.now() - started >= options.timeoutMs + 10_000) {
      return fail(error('instance-stop-failed', `instance '${record.name}' (pid ${record.pid}) did not end after SIGKILL`, { hint: 'check it with ps; its record is kept' }));
    }
    await sleep(20);
  }
  rmSync(recordPath(dir, record.name), { force: true });
  return ok({ killed });
}

function readlinkOr(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

export interface JoinOptions {
  readonly action: Exclude<ContainerAction, 'raw' | 'start'>;
  readonly args: readonly string[];
  /** The command's whole environment (containerEnvironment). */
  readonly env: Readonly<Record<string, string>>;
  /** Tried first as the working folder inside, then $HOME, then /. */
  readonly cwd: string;
  readonly stdio?: StdioOptions;
}

/**
 * Runs an action inside a running instance (`exec|shell|run instance://NAME`): nsenter joins the
 * namespaces of its process 1 (mount, pid, and the user namespace of a caller that is not root)
 * and its root, then the launcher runs as in a new session.
 */
export function joinInstance(record: InstanceRecord, options: JoinOptions): Promise<Result<StarterExit>> {
  const init = instanceInit(record);
  if (init === undefined) return Promise.resolve(fail(error('instance-not-found', `instance '${record.name}' is not running any more`)));
  const ownUser = readlinkOr('/proc/self/ns/user');
  const user = readlinkOr(`/proc/${init}/ns/user`) !== ownUser ? ['-U', '--preserve-credentials'] : [];
  const { command } = actionCommand(options.action, options.args, options.env);
  const prelude = 'cd -- "$ORCHESTRATOR_PWD" 2>/dev/null || cd -- "$HOME" 2>/dev/null || cd /; unset ORCHESTRATOR_PWD; ';
  const argv = ['-t', String(init), ...user, '-m', '-p', '-r', '-w', '--', command[0]!, command[1]!, prelude + SHELL_CHOICE, ...command.slice(3)];
  return new Promise((resolvePromise) => {
    const child = spawn('nsenter', argv, { stdio: options.stdio ?? 'inherit', env: { ...options.env, ORCHESTRATOR_PWD: options.cwd } });
    const forward = (sig: NodeJS.Signals): void => {
      try {
        child.kill(sig);
      } catch {
        // gone
      }
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const done = (r: Result<StarterExit>): void => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolvePromise(r);
    };
    child.on('error', (e) => done(fail(error('instance-join-failed', `could not run nsenter: ${e.message}`, { hint: 'install util-linux (nsenter)' }))));
    child.on('exit', (code, sig) => done(ok({ exitCode: code ?? 128 + (sig ? (constants.signals[sig] ?? 1) : 127), interrupted: false })));
  });
}
