import type { StdioOptions } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, relative } from 'node:path';
import { error } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { unreachable } from '../core/unreachable.js';
import type { DetectedImage } from '../image/detect-image.js';
import { actionCommand, type ContainerAction } from './action-script.js';
import type { BindSpec } from './bind-spec.js';
import { releaseSessionDir, sessionDir, type SessionDir } from './session-dir.js';
import { runStarter, type BindFlag, type StarterExit, type StarterOp, type StarterPlan } from './starter.js';

/**
 * What the container's root is made of: an image (sandbox folder, squashfs or ext3 file), or, for
 * build steps, an overlay of folders with a persistent upper folder (docs/ARCHITECTURE.md, Steps).
 */
export type ContainerRoot =
  | { readonly kind: 'image'; readonly image: DetectedImage }
  | { readonly kind: 'overlay'; readonly lowers: readonly string[]; readonly upper: string; readonly work: string };

/**
 * `ephemeral`: a tmpfs overlay, changes vanish at exit (the default; `--writable-tmpfs`).
 * `writable`: changes persist (sandbox and ext3; root only for image files).
 * `read-only`: every write fails with EROFS (`--read-only`).
 * For an `overlay` root the mode is ignored: the upper folder takes the writes.
 */
export type ContainerMode = 'ephemeral' | 'writable' | 'read-only';

export interface ContainerOptions {
  readonly root: ContainerRoot;
  readonly action: ContainerAction;
  /** exec: the command and its arguments; run/test/shell: the arguments; raw: the argv. */
  readonly args: readonly string[];
  readonly mode: ContainerMode;
  /** User binds, in order, after the default ones. */
  readonly binds?: readonly BindSpec[];
  /**
   * $HOME, /tmp, /var/tmp, cwd, /etc/resolv.conf, hosts, localtime, passwd, group (default true).
   * Build steps turn it off (and list the host files they want in hostFiles). /proc, /sys and /dev
   * are always there.
   */
  readonly defaultBinds?: boolean;
  /** Minimal /dev, empty /tmp, /var/tmp and home, no cwd (`--contain`). */
  readonly contain?: boolean;
  /** A new pid namespace (`--containall` implies it). */
  readonly pidNamespace?: boolean;
  /** Start from an empty environment instead of the caller's (`--cleanenv`). */
  readonly cleanEnv?: boolean;
  /** Working folder inside (`--pwd`); default: the caller's cwd when it is there, else home, else /. */
  readonly pwd?: string;
  /** `--home SRC[:DST]`. */
  readonly home?: { readonly source: string; readonly target: string };
  /** The caller's environment: passed through (unless cleanEnv), and SINGULARITYENV_X/APPTAINERENV_X. */
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  /**
   * Singularity 2.4's environment rules (`--legacy-env`): the host's PATH and LD_LIBRARY_PATH pass
   * in. Default: Apptainer's (docs/ARCHITECTURE.md, Runtime).
   */
  readonly legacyEnv?: boolean;
  /** `--env-file`'s variables, then SINGULARITYENV_X, then `--env`'s (each wins over the one before). */
  readonly envFile?: Readonly<Record<string, string>>;
  readonly userEnv?: Readonly<Record<string, string>>;
  /** The SCIF app (`--app NAME`): SINGULARITY_APPNAME and APPTAINER_APPNAME inside. */
  readonly app?: string;
  /** Set last, over everything (build steps: DEBIAN_FRONTEND and the like). */
  readonly env?: Readonly<Record<string, string>>;
  /** The caller's working folder (host path). */
  readonly cwd: string;
  /** For the non-root extraction of image files (docs/ARCHITECTURE.md, Runtime). */
  readonly cacheDir: string;
  /** Extra host files bound read-only, e.g. resolv.conf for build steps when defaultBinds is off. */
  readonly hostFiles?: readonly string[];
  readonly stdio?: StdioOptions;
  /** Own process group (default true); false for an interactive session on a terminal. */
  readonly detached?: boolean;
  /** Forward this process's SIGINT/SIGTERM to the container (the CLI's exec/run/shell/test). */
  readonly forwardSignals?: boolean;
  readonly signal?: AbortSignal;
}

export type ContainerExit = StarterExit;

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The innermost bound folder strictly containing `target`. */
function enclosingBind<T extends { readonly target: string }>(bound: readonly T[], target: string): T | undefined {
  let best: T | undefined;
  for (const b of bound) {
    const rel = relative(b.target, target);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) continue;
    if (!best || b.target.length >= best.target.length) best = b;
  }
  return best;
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The caller's passwd line from the host, or a made-up one. */
function passwdEntry(uid: number, gid: number, home: string, env: ContainerOptions['hostEnv']): { name: string; line: string } {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 7 && Number(f[2]) === uid) return { name: f[0]!, line: [f[0], 'x', uid, gid, f[4], home, f[6]].join(':') };
    }
  } catch {
    // no host passwd
  }
  const name = env['USER'] ?? `user${uid}`;
  return { name, line: `${name}:x:${uid}:${gid}:${name}:${home}:/bin/sh` };
}

function groupEntry(gid: number): { name: string; line: string } {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && Number(f[2]) === gid) return { name: f[0]!, line: `${f[0]}:x:${gid}:` };
    }
  } catch {
    // no host group
  }
  return { name: `group${gid}`, line: `group${gid}:x:${gid}:` };
}

/** Host variables Apptainer passes even with --cleanenv. */
const ALWAYS_PASSED = ['TERM', 'http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY', 'ftp_proxy', 'FTP_PROXY'];
/** Host variables Apptainer never passes; `true`: SINGULARITYENV_X/--env may still set them. */
const NEVER_PASSED: Readonly<Record<string, boolean>> = { HOME: false, PATH: false, LD_LIBRARY_PATH: true, SINGULARITY_SHELL: false, APPTAINER_SHELL: false, SINGULARITY_APPNAME: false, APPTAINER_APPNAME: false, SHELL: true };

/**
 * Sets one variable asked for with SINGULARITYENV_X, APPTAINERENV_X, --env or --env-file, with
 * Apptainer's rules: PATH, PREPEND_PATH and APPEND_PATH go to the image's 99-runtimevars.sh (which
 * applies them after the image's own env files); HOME, the shell and the app cannot be set.
 */
function setUserVariable(env: Record<string, string>, key: string, value: string): void {
  if (key === 'PATH') env['SING_USER_DEFINED_PATH'] = value;
  else if (key === 'PREPEND_PATH') env['SING_USER_DEFINED_PREPEND_PATH'] = value;
  else if (key === 'APPEND_PATH') env['SING_USER_DEFINED_APPEND_PATH'] = value;
  else if (NEVER_PASSED[key] !== false) env[key] = value;
}

/**
 * The container's environment (docs/ARCHITECTURE.md, Runtime). Apptainer's rules by default: the
 * host's PATH, LD_LIBRARY_PATH, HOME and SINGULARITY_ and APPTAINER_ variables stay outside, PATH
 * starts as the default one and the image's env files build on it. `legacyEnv` keeps Singularity
 * 2.4's: every host variable passes (PATH too, the default only when the host has none).
 */
export function containerEnvironment(
  options: Pick<ContainerOptions, 'hostEnv' | 'cleanEnv' | 'legacyEnv' | 'envFile' | 'userEnv' | 'app' | 'env'>,
  extra: { home: string; container: string },
): Record<string, string> {
  const env: Record<string, string> = {};
  const host = options.hostEnv;
  const legacy = options.legacyEnv === true;
  const userPrefix = (k: string) => k.startsWith('SINGULARITYENV_') || k.startsWith('APPTAINERENV_');
  if (options.cleanEnv) {
    for (const k of legacy ? ['TERM', 'LANG'] : ALWAYS_PASSED) if (host[k] !== undefined) env[k] = host[k];
    if (!legacy) env['LANG'] = 'C';
  } else {
    for (const [k, v] of Object.entries(host)) {
      if (v === undefined || userPrefix(k)) continue;
      if (!legacy && (k in NEVER_PASSED || k.startsWith('SINGULARITY_') || k.startsWith('APPTAINER_'))) continue;
      env[k] = v;
    }
  }
  if (!legacy || env['PATH'] === undefined) env['PATH'] = DEFAULT_PATH;
  const userSet: Record<string, string> = {};
  const set = (k: string, v: string): void => {
    if (legacy) env[k] = v;
    else setUserVariable(userSet, k, v);
  };
  for (const [k, v] of Object.entries(options.envFile ?? {})) set(k, v);
  for (const prefix of ['SINGULARITYENV_', 'APPTAINERENV_']) {
    for (const [k, v] of Object.entries(host)) if (v !== undefined && k.startsWith(prefix) && k.length > prefix.length) set(k.slice(prefix.length), v);
  }
  for (const [k, v] of Object.entries(options.userEnv ?? {})) set(k, v);
  Object.assign(env, userSet);
  // Applied again after the image's env files (ENV_LOOP, ACTION_LAUNCHER): they win over
  // %environment. `$NAME` in a value is expanded there, as Apptainer evaluates `--env PATH=\$PATH:/x`.
  const assignments = Object.entries(userSet)
    .filter(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) && !k.startsWith('SING_USER_DEFINED_'))
    .map(([k, v]) => `export ${k}="${v.replace(/[\\"`]/g, (c) => `\\${c}`)}"`);
  if (assignments.length > 0) env['ORCHESTRATOR_USER_ENV'] = assignments.join('\n');
  const shell = host['APPTAINER_SHELL'] ?? host['SINGULARITY_SHELL'];
  if (shell !== undefined) env['SINGULARITY_SHELL'] = shell;
  if (options.app !== undefined) {
    env['SINGULARITY_APPNAME'] = options.app;
    env['APPTAINER_APPNAME'] = options.app;
  }
  env['HOME'] = extra.home;
  env['SINGULARITY_CONTAINER'] = extra.container;
  env['APPTAINER_CONTAINER'] = extra.container;
  env['SINGULARITY_NAME'] = basename(extra.container);
  env['APPTAINER_NAME'] = basename(extra.container);
  if (options.env) Object.assign(env, options.env);
  return env;
}

/**
 * Plans a session: the starter operations for the root, the binds, the environment and the
 * command. Image files are extracted here for callers that are not root (it may take a while
 * the first time). Bad input (a bind source that does not exist, `--writable` on squashfs) is a
 * Diagnostic.
 */
export async function planContainer(options: ContainerOptions, session?: SessionDir): Promise<Result<StarterPlan>> {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  let S: string;
  if (session) S = session.path;
  else {
    const dir = sessionDir(options.hostEnv, uid);
    if (!dir.ok) return dir;
    S = dir.value.path;
  }
  const R = join(S, 'root');
  const ops: StarterOp[] = [
    { op: 'session', target: S, data: 'size=256m,mode=0755' },
    { op: 'mkdir', path: R },
    { op: 'mkdir', path: join(S, 'files') },
  ];
  const mode = options.root.kind === 'overlay' ? 'ephemeral' : options.mode;
  const plan: SessionPlan = { options, ops, S, R, uid, gid, root: uid === 0, mode, canCreate: mode !== 'writable' };
  const container = await rootOps(plan);
  if (!container.ok) return container;

  const hostHome = options.hostEnv['HOME'] ?? (plan.root ? '/root' : '/');
  const home = options.home ?? { source: hostHome, target: hostHome };
  systemMounts(plan);
  if (options.defaultBinds !== false) defaultBinds(plan, home);
  for (const f of options.hostFiles ?? []) ops.push({ op: 'bind', source: f, target: inside(plan, f), flags: [...optionalFlags(plan), 'ro', 'norec'] });
  if (options.home && !exists(options.home.source)) {
    return fail(error('home-not-found', `--home: ${options.home.source} does not exist`, { hint: 'create it, or give an existing folder' }));
  }
  const binds = userBinds(plan, home);
  if (!binds.ok) return binds;

  const cwdInside = options.defaultBinds !== false && options.contain !== true && options.cwd !== '/';
  if (cwdInside) ops.push({ op: 'bind', source: options.cwd, target: inside(plan, options.cwd), flags: [...optionalFlags(plan), 'ifmissing', 'nosuid', 'nodev'] });
  if (mode === 'read-only') ops.push({ op: 'remount-ro', path: R });
  ops.push({ op: 'pivot', newRoot: R });

  const env = containerEnvironment(options, { home: home.target, container: container.value });
  const { command, fallback } = actionCommand(options.action, options.args, env);
  const cwd = options.pwd !== undefined ? [options.pwd] : [...(cwdInside ? [options.cwd] : []), home.target, '/'];
  return ok({
    userns: !plan.root,
    pidns: options.pidNamespace === true,
    ops,
    cwd,
    env,
    noNewPrivs: true,
    command,
    ...(fallback ? { fallback } : {}),
  });
}

/** A session being planned: the starter operations so far and what decides the next ones. */
interface SessionPlan {
  readonly options: ContainerOptions;
  readonly ops: StarterOp[];
  /** The session folder, and the container's root inside it. */
  readonly S: string;
  readonly R: string;
  readonly uid: number;
  readonly gid: number;
  readonly root: boolean;
  readonly mode: ContainerOptions['mode'];
  /** Mount points may be made (in the overlay's upper); in a --writable root they must exist. */
  readonly canCreate: boolean;
}

const inside = (plan: SessionPlan, p: string): string => join(plan.R, p);
/** Flags of mounts every session has (made when missing, else skipped in a --writable root). */
const systemFlags = (plan: SessionPlan): BindFlag[] => (plan.canCreate ? ['mkpoint'] : ['optional']);
/** Flags of mounts a session may go without. */
const optionalFlags = (plan: SessionPlan): BindFlag[] => (plan.canCreate ? ['mkpoint', 'optional'] : ['optional']);

/** What the caller sees of a host folder's mode as the root of the container. */
function seenMode(plan: SessionPlan, path: string): number {
  const st = statSync(path);
  const m = st.mode & 0o7777;
  if (plan.root || st.uid === plan.uid) return m & 0o777;
  const o = m & 0o7;
  return (o << 6) | (o << 3) | o;
}

function overlayOver(plan: SessionPlan, lowers: string[], rootMode: number): void {
  const { ops, S, R } = plan;
  ops.push({ op: 'mkdir', path: join(S, 'upper') }, { op: 'mkdir', path: join(S, 'work') }, { op: 'chmod', path: join(S, 'upper'), mode: rootMode });
  ops.push({ op: 'overlay', target: R, lowers, upper: join(S, 'upper'), work: join(S, 'work') });
}

/** The container's root: an overlay of a build step, or an image (bound, mounted or extracted). Gives the container's path. */
async function rootOps(plan: SessionPlan): Promise<Result<string>> {
  const { options, ops, S, R, mode } = plan;
  const r = options.root;
  switch (r.kind) {
    case 'overlay':
      ops.push({ op: 'overlay', target: R, lowers: [...r.lowers], upper: r.upper, work: r.work });
      return ok(r.upper);
    case 'image': {
      const image = r.image;
      if (mode === 'writable' && image.format === 'squashfs') {
        return fail(
          error('image-immutable', `${image.path}: a squashfs image is immutable; --writable works on sandboxes and ext3 images`, {
            hint: `make a writable copy: 'orchestrator build --sandbox DIR ${image.path}', or use --writable-tmpfs for changes that vanish at exit`,
          }),
        );
      }
      if (image.format === 'sandbox') {
        if (mode === 'writable') ops.push({ op: 'bind', source: image.path, target: R, flags: ['norec'] });
        else overlayOver(plan, [image.path], seenMode(plan, image.path));
      } else if (plan.root) {
        const I = join(S, 'image');
        if (mode === 'writable') {
          ops.push({ op: 'image', type: image.format, file: image.path, offset: image.offset, target: R, writable: true });
        } else {
          ops.push({ op: 'mkdir', path: I }, { op: 'image', type: image.format, file: image.path, offset: image.offset, target: I, writable: false });
          overlayOver(plan, [I], 0o755);
        }
      } else {
        if (mode === 'writable') {
          return fail(
            error('image-writable-needs-root', `${image.path}: --writable on an ${image.format} image file needs root (it is mounted through a loop device)`, {
              hint: 'run as root, or use a sandbox folder for changes that persist',
            }),
          );
        }
        // Through FUSE in the session's namespace where /dev/fuse is usable, else extracted once.
        const { nonRootImageMount } = await import('./fuse-mount.js');
        const how = await nonRootImageMount({ ...image, format: image.format }, { env: options.hostEnv });
        if (how.kind === 'fuse') {
          const I = join(S, 'image');
          ops.push({ op: 'mkdir', path: I }, { op: 'fuse', type: image.format, helper: how.helper, file: image.path, offset: image.offset, target: I });
          // The image's / as the caller sees it: root's 0755 gives its "other" bits, as extraction does.
          overlayOver(plan, [I], 0o555);
          return ok(image.path);
        }
        // Loaded only here: hashing and extraction are the non-root path's (keeps exec start-up lean).
        const { extractImage } = await import('./extract-image.js');
        const extracted = await extractImage(image, { cacheDir: options.cacheDir, ...(options.signal ? { signal: options.signal } : {}) });
        if (!extracted.ok) return extracted;
        overlayOver(plan, [extracted.value], seenMode(plan, extracted.value));
      }
      return ok(image.path);
    }
    default:
      return unreachable(r);
  }
}

/** /proc, /sys and /dev: every session has them (build steps too). */
function systemMounts(plan: SessionPlan): void {
  const { ops } = plan;
  const sys = systemFlags(plan);
  if (plan.options.pidNamespace === true) ops.push({ op: 'proc', target: inside(plan, '/proc') });
  else ops.push({ op: 'bind', source: '/proc', target: inside(plan, '/proc'), flags: sys });
  ops.push({ op: 'bind', source: '/sys', target: inside(plan, '/sys'), flags: [...sys, 'nosuid', 'nodev'] });
  if (plan.options.contain !== true) {
    ops.push({ op: 'bind', source: '/dev', target: inside(plan, '/dev'), flags: sys });
    return;
  }
  if (plan.canCreate) ops.push({ op: 'mkdir', path: inside(plan, '/dev') });
  ops.push({ op: 'tmpfs', target: inside(plan, '/dev'), data: 'mode=0755,size=1m' });
  for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty']) ops.push({ op: 'bind', source: `/dev/${d}`, target: inside(plan, `/dev/${d}`), flags: ['mkpoint', 'optional'] });
  ops.push({ op: 'devpts', target: inside(plan, '/dev/pts') }, { op: 'mkdir', path: inside(plan, '/dev/shm') }, { op: 'tmpfs', target: inside(plan, '/dev/shm'), data: 'mode=1777' });
}

/** The default binds: the host's resolv.conf, hosts and localtime, the caller in passwd and group, $HOME, /tmp, /var/tmp. */
function defaultBinds(plan: SessionPlan, home: { source: string; target: string }): void {
  const { ops, options, S, uid, gid } = plan;
  const sys = systemFlags(plan);
  const opt = optionalFlags(plan);
  for (const f of ['/etc/resolv.conf', '/etc/hosts', '/etc/localtime']) ops.push({ op: 'bind', source: f, target: inside(plan, f), flags: [...opt, 'ro', 'norec'] });
  if (!plan.root) {
    const user = passwdEntry(uid, gid, home.target, options.hostEnv);
    const group = groupEntry(gid);
    ops.push({ op: 'append-line', source: inside(plan, '/etc/passwd'), target: join(S, 'files', 'passwd'), prefix: `${user.name}:`, line: user.line });
    ops.push({ op: 'append-line', source: inside(plan, '/etc/group'), target: join(S, 'files', 'group'), prefix: `${group.name}:`, line: group.line });
    ops.push({ op: 'bind', source: join(S, 'files', 'passwd'), target: inside(plan, '/etc/passwd'), flags: [...opt, 'norec'] });
    ops.push({ op: 'bind', source: join(S, 'files', 'group'), target: inside(plan, '/etc/group'), flags: [...opt, 'norec'] });
  }
  if (options.contain !== true) {
    if (home.target !== '/') ops.push({ op: 'bind', source: home.source, target: inside(plan, home.target), flags: options.home ? [...sys, 'nosuid', 'nodev'] : [...opt, 'nosuid', 'nodev'] });
    ops.push({ op: 'bind', source: '/tmp', target: inside(plan, '/tmp'), flags: [...opt, 'nosuid', 'nodev'] });
    ops.push({ op: 'bind', source: '/var/tmp', target: inside(plan, '/var/tmp'), flags: [...opt, 'nosuid', 'nodev'] });
    return;
  }
  for (const d of ['/tmp', '/var/tmp']) {
    if (plan.canCreate) ops.push({ op: 'mkdir', path: inside(plan, d) });
    ops.push({ op: 'tmpfs', target: inside(plan, d), data: 'mode=1777' });
  }
  if (options.home) ops.push({ op: 'bind', source: home.source, target: inside(plan, home.target), flags: [...sys, 'nosuid', 'nodev'] });
  else if (home.target !== '/') {
    if (plan.canCreate) ops.push({ op: 'mkdir', path: inside(plan, home.target) });
    ops.push({ op: 'tmpfs', target: inside(plan, home.target), data: `mode=0700,uid=${uid},gid=${gid}` });
  }
}

/**
 * The caller's `-B` binds. A mount point missing inside a folder bound from the host so far is
 * never created (it would be created on the host); the starter refuses it too.
 */
function userBinds(plan: SessionPlan, home: { source: string; target: string }): Result<void> {
  const { options, ops, canCreate } = plan;
  const defaults = options.defaultBinds !== false;
  const contain = options.contain === true;
  const bound: { source: string; target: string }[] = [];
  if (defaults && (contain ? options.home !== undefined : home.target !== '/')) bound.push(home);
  if (defaults && !contain) bound.push({ source: '/tmp', target: '/tmp' }, { source: '/var/tmp', target: '/var/tmp' });
  for (const b of options.binds ?? []) {
    if (!exists(b.source)) return fail(error('bind-source-not-found', `bind source ${b.source} does not exist`, { hint: `create it, or fix the path in -B ${b.source}` }));
    const outer = canCreate ? enclosingBind(bound.filter((o) => exists(o.source)), b.target) : undefined;
    if (outer && !exists(join(outer.source, relative(outer.target, b.target)))) {
      const hostPath = join(outer.source, relative(outer.target, b.target));
      return fail(
        error('bind-target-in-bind', `bind destination ${b.target} is inside ${outer.target}, which is bound from the host's ${outer.source}, and ${hostPath} does not exist; it is not created on the host`, {
          hint: `create ${hostPath} on the host first, or bind to a destination outside ${outer.target}`,
        }),
      );
    }
    bound.push(b);
    const flags: BindFlag[] = [...(canCreate ? (['mkpoint'] as const) : []), b.readOnly ? 'ro' : 'rw', 'nosuid', 'nodev'];
    ops.push({ op: 'bind', source: b.source, target: inside(plan, b.target), flags });
  }
  return ok(undefined);
}

/**
 * Runs a container session to its end: plans it, starts the starter and returns the command's
 * exit status (docs/ARCHITECTURE.md, Runtime). The build engine calls it for `%post` and `%test` with an
 * `overlay` root and the `raw` action.
 */
export async function runContainer(options: ContainerOptions): Promise<Result<ContainerExit>> {
  const session = sessionDir(options.hostEnv);
  if (!session.ok) return session;
  try {
    const plan = await planContainer(options, session.value);
    if (!plan.ok) return plan;
    return await runStarter(plan.value, {
      ...(options.stdio ? { stdio: options.stdio } : {}),
      ...(options.detached !== undefined ? { detached: options.detached } : {}),
      ...(options.forwardSignals !== undefined ? { forwardSignals: options.forwardSignals } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } finally {
    releaseSessionDir(session.value);
  }
}
