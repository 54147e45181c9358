/**
 * Builds without root (docs/ARCHITECTURE.md, Building without root): the CLI re-executes itself
 * through util-linux `unshare` in a new user and mount namespace, where it is uid 0, so the build
 * code (overlays, layer owners, the starter for %post) runs unchanged and the kernel maps every id
 * it writes to the caller or the caller's subordinate ids.
 *
 * - `subuid`: /etc/subuid and /etc/subgid give the caller >= 65536 ids and newuidmap/newgidmap
 *   exist: 0 → the caller, 1..N → the range. A complete fake root.
 * - `single-id`: only 0 → the caller. chown to any other id fails (EINVAL).
 * - `root`: the caller is root; no namespace (unless --fakeroot asks for one).
 *
 * An environment marker (ORCHESTRATOR_USERNS=MODE:UID:GID) tells the process inside which mode it
 * runs in and who the caller is; the outer process only forwards signals and passes on the exit
 * status.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { inChildUserNamespace, USERNS_ENV } from '../core/id-map.js';
import { fail, ok, type Result } from '../core/result.js';

export type BuildMode = 'root' | 'subuid' | 'single-id';

/** What the command line asked for: `--fakeroot`, `--no-fakeroot`, or neither. */
export type FakerootChoice = 'auto' | 'fakeroot' | 'no-fakeroot';

export { USERNS_ENV };

/** The fewest subordinate ids that make a usable fake root (Apptainer's and Podman's default). */
export const MIN_SUBORDINATE_IDS = 65536;

export interface SubordinateRange {
  readonly start: number;
  readonly count: number;
}

/** What the mode depends on, read from the host (or given by a test). */
export interface HostFacts {
  readonly uid: number;
  readonly gid: number;
  /** The caller's user name, when /etc/passwd has one. */
  readonly user: string | undefined;
  /** The texts of /etc/subuid and /etc/subgid ('' when missing). */
  readonly subuid: string;
  readonly subgid: string;
  /** newuidmap and newgidmap are on PATH. */
  readonly idMapTools: boolean;
  /** /proc/sys/user/max_user_namespaces (undefined when unreadable). */
  readonly maxUserNamespaces: number | undefined;
  /** /proc/sys/kernel/unprivileged_userns_clone where the kernel has it (Debian's older kernels). */
  readonly unprivilegedUsernsClone: number | undefined;
}

/** The mode chosen, and for a namespace the ranges to map. */
export interface ModeChoice {
  readonly mode: BuildMode;
  /** True when the process must re-execute itself in a user namespace. */
  readonly namespace: boolean;
  readonly uidRange?: SubordinateRange;
  readonly gidRange?: SubordinateRange;
}

/** The first range of at least MIN_SUBORDINATE_IDS ids that /etc/subuid (or subgid) gives `user` or `id`. */
export function subordinateRange(text: string, user: string | undefined, id: number): SubordinateRange | undefined {
  for (const line of text.split('\n')) {
    const f = line.trim().split(':');
    if (f.length !== 3 || line.trim().startsWith('#')) continue;
    if (f[0] !== user && f[0] !== String(id)) continue;
    const start = Number(f[1]);
    const count = Number(f[2]);
    if (Number.isInteger(start) && Number.isInteger(count) && start > 0 && count >= MIN_SUBORDINATE_IDS) return { start, count };
  }
  return undefined;
}

function readNumber(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): boolean {
  for (const dir of (env['PATH'] ?? '/usr/bin:/bin').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** Reads the facts from this host. */
export function hostFacts(env: NodeJS.ProcessEnv): HostFacts {
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    user = undefined;
  }
  return {
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    user,
    subuid: readText('/etc/subuid'),
    subgid: readText('/etc/subgid'),
    idMapTools: onPath('newuidmap', env) && onPath('newgidmap', env),
    maxUserNamespaces: readNumber('/proc/sys/user/max_user_namespaces'),
    unprivilegedUsernsClone: readNumber('/proc/sys/kernel/unprivileged_userns_clone'),
  };
}

function namespacesDisabled(facts: HostFacts): Diagnostic | undefined {
  if (facts.maxUserNamespaces === 0) {
    return error('userns-disabled', 'building without root needs a user namespace, and this system allows none (user.max_user_namespaces is 0)', {
      hint: "ask the administrator to allow them: 'sysctl -w user.max_user_namespaces=15000' (and in /etc/sysctl.d/ to keep it), or build as root",
    });
  }
  if (facts.uid !== 0 && facts.unprivilegedUsernsClone === 0) {
    return error('userns-disabled', 'building without root needs a user namespace, and this kernel allows them only to root (kernel.unprivileged_userns_clone is 0)', {
      hint: "ask the administrator to allow them: 'sysctl -w kernel.unprivileged_userns_clone=1' (and in /etc/sysctl.d/ to keep it), or build as root",
    });
  }
  return undefined;
}

function whoText(facts: HostFacts): string {
  return facts.user ?? String(facts.uid);
}

/** The subuid mode's ranges, or what is missing for it (for --fakeroot). */
function subuidRanges(facts: HostFacts): Result<{ uidRange: SubordinateRange; gidRange: SubordinateRange }, Diagnostic> {
  const uidRange = subordinateRange(facts.subuid, facts.user, facts.uid);
  const gidRange = subordinateRange(facts.subgid, facts.user, facts.uid);
  if (!uidRange || !gidRange) {
    const missing = [!uidRange ? '/etc/subuid' : undefined, !gidRange ? '/etc/subgid' : undefined].filter((x) => x !== undefined).join(' and ');
    return fail(
      error('no-subordinate-ids', `--fakeroot needs a range of at least ${MIN_SUBORDINATE_IDS} subordinate ids for ${whoText(facts)} in ${missing}, and there is none`, {
        hint: `ask the administrator to add one: 'usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${whoText(facts)}' (any free range), or build without --fakeroot (single-id mode)`,
      }),
    );
  }
  if (!facts.idMapTools) {
    return fail(
      error('no-newuidmap', `--fakeroot maps ${whoText(facts)}'s subordinate ids through newuidmap and newgidmap, and they are not installed`, {
        hint: "install them: 'apt-get install uidmap' (Debian, Ubuntu) or 'dnf install shadow-utils', or build without --fakeroot (single-id mode)",
      }),
    );
  }
  return ok({ uidRange, gidRange });
}

/**
 * The build mode for `choice` on a host with `facts`: root as root, else subuid where the ranges
 * and tools are there, else single-id. --fakeroot insists on subuid (even as root); --no-fakeroot
 * forbids a namespace. Inside the namespace (the marker is set) the marker's mode is the answer.
 */
export function chooseBuildMode(choice: FakerootChoice, facts: HostFacts, env: NodeJS.ProcessEnv): Result<ModeChoice, Diagnostic> {
  const inside = modeInside(env);
  if (inside) return ok({ mode: inside.mode, namespace: false });
  if (choice === 'no-fakeroot') {
    if (facts.uid === 0) return ok({ mode: 'root', namespace: false });
    return fail(
      error('needs-root', 'building needs root or a user namespace, and --no-fakeroot forbids the namespace', {
        hint: "run it as root (e.g. 'sudo orchestrator up'), or leave out --no-fakeroot to build in a user namespace",
      }),
    );
  }
  if (choice === 'auto' && facts.uid === 0) return ok({ mode: 'root', namespace: false });
  const disabled = namespacesDisabled(facts);
  if (disabled) return fail(disabled);
  const ranges = subuidRanges(facts);
  if (ranges.ok) return ok({ mode: 'subuid', namespace: true, uidRange: ranges.value.uidRange, gidRange: ranges.value.gidRange });
  if (choice === 'fakeroot') return ranges;
  return ok({ mode: 'single-id', namespace: true });
}

/** The mode and caller given by the marker, when this process runs in the build namespace. */
export function modeInside(env: NodeJS.ProcessEnv): { mode: BuildMode; uid: number; gid: number } | undefined {
  const m = /^(subuid|single-id):(\d+):(\d+)$/.exec(env[USERNS_ENV] ?? '');
  if (!m || (process.getuid?.() ?? -1) !== 0 || !inChildUserNamespace()) return undefined;
  return { mode: m[1] as BuildMode, uid: Number(m[2]), gid: Number(m[3]) };
}

/** The mode this process builds in now: the marker's inside the namespace, else root or not. */
export function currentBuildMode(env: NodeJS.ProcessEnv): BuildMode | undefined {
  const inside = modeInside(env);
  if (inside) return inside.mode;
  return process.getuid?.() === 0 ? 'root' : undefined;
}

/** The `unshare` arguments that make the namespace of `choice` (before `--` and the command). */
export function unshareArgs(choice: ModeChoice): string[] {
  const base = ['--user', '--mount', '--map-user=0', '--map-group=0'];
  if (choice.mode === 'subuid' && choice.uidRange && choice.gidRange) {
    return [...base, `--map-users=${choice.uidRange.start},1,${choice.uidRange.count}`, `--map-groups=${choice.gidRange.start},1,${choice.gidRange.count}`];
  }
  return base;
}

/** The line `up` and `plan` show: how this run builds. */
export function modeLine(mode: BuildMode): string {
  switch (mode) {
    case 'root':
      return 'building as root';
    case 'subuid':
      return 'building without root in a user namespace (subuid mode: container ids map to your subordinate ids)';
    case 'single-id':
      return 'building without root in a user namespace (single-id mode: only id 0 exists; chown to other ids fails)';
  }
}

/** SIGNALS forwarded from the outer process to the one in the namespace. */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** What `unshare` said when it could not make the namespace (or could not start), as a diagnostic. */
function unshareFailure(text: string): Diagnostic {
  return error('userns-failed', `cannot enter a user namespace for a build without root: ${text.split('\n').join('; ')}`, { hint: unshareHint(text) });
}

/**
 * Runs this same command again inside the namespace of `choice` and resolves with its exit status
 * (128 + N when signal N ended it), or with why the namespace could not be entered: then nothing
 * ran in it. The child gets its own process group, so a terminal's Ctrl-C reaches it once,
 * through this process; SIGINT, SIGTERM and SIGHUP are forwarded, and this process waits for the
 * child whatever it is sent.
 *
 * There is no separate trial run (`unshare ... true`, a process more at every start): `unshare`'s
 * own stderr is a pipe read here, and `sh` gives the command this process's stderr back (fd 3 →
 * 2) as it execs it, so the pipe holds only what `unshare` said before the command started. A
 * failure with words there is the namespace's, said as a diagnostic; the command's own output
 * never passes through this process.
 */
export function reexecInNamespace(
  choice: ModeChoice,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  facts: Pick<HostFacts, 'uid' | 'gid'>,
): Promise<{ readonly code: number } | { readonly failed: Diagnostic }> {
  const script = process.argv[1] ?? '';
  const command = [process.execPath, ...process.execArgv, '--', script, ...argv];
  const args = [...unshareArgs(choice), '--', '/bin/sh', '-c', 'exec "$@" 2>&3 3>&-', 'sh', ...command];
  const childEnv = { ...env, [USERNS_ENV]: `${choice.mode}:${facts.uid}:${facts.gid}` };
  return new Promise((resolve) => {
    const child = spawn('unshare', args, { stdio: ['inherit', 'inherit', 'pipe', 2], env: childEnv, detached: true });
    let said = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (said.length < 64 * 1024) said += chunk;
    });
    const forward = (sig: NodeJS.Signals): void => {
      child.kill(sig);
    };
    for (const s of FORWARDED) process.on(s, forward);
    const done = (r: { code: number } | { failed: Diagnostic }): void => {
      for (const s of FORWARDED) process.off(s, forward);
      resolve(r);
    };
    child.on('error', (e) => {
      done({ failed: error('userns-failed', `cannot start 'unshare' for a build without root: ${e.message}`, { hint: "install util-linux 2.38 or later ('apt-get install util-linux')" }) });
    });
    child.on('close', (code, signal) => {
      const text = said.trim();
      if (code !== 0 && text !== '') done({ failed: unshareFailure(text) });
      else done({ code: code ?? 128 + signalNumber(signal) });
    });
  });
}

function unshareHint(text: string): string {
  if (/No space left on device/.test(text)) return "the limit of user namespaces is reached or 0: ask the administrator to raise it ('sysctl -w user.max_user_namespaces=15000')";
  if (/newuidmap|newgidmap/.test(text)) return "check that newuidmap and newgidmap are setuid root ('apt-get install --reinstall uidmap') and that /etc/subuid and /etc/subgid give you the range";
  if (/unrecognized option|invalid option/.test(text)) return "this needs util-linux 2.38 or later for 'unshare --map-users'";
  return "user namespaces may be disabled here: ask the administrator, or build as root";
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const n: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return (signal && n[signal]) ?? 1;
}

/** This process's parent pid now (`/proc/self/stat`; Node's `process.ppid` is read once at start). */
function parentPid(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/**
 * Inside the namespace: calls `onOrphaned` once when the process that re-executed this one is gone
 * (SIGKILLed: it could forward nothing), so the command stops as on SIGTERM and cleans up instead of
 * building on unseen. Returns the function that stops watching.
 */
export function watchReexecParent(onOrphaned: () => void, everyMs = 500): () => void {
  const first = parentPid();
  const timer = setInterval(() => {
    if (parentPid() !== first) {
      clearInterval(timer);
      onOrphaned();
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
