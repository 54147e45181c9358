/**
 * Mounting a stack of unpacked layers with overlayfs.
 *
 * Until the starter (native/starter, see DESIGN 3.3) exists, the mount is made by `unshare -m`
 * + `mount -t overlay` in a private mount namespace that lives exactly as long as the command run
 * in it: a killed run leaves no mount behind. The options are built by `overlayMountOptions`, a
 * pure function the starter's argument vector can reuse unchanged (`--mount overlay:<target>:<options>`).
 *
 * Lower folders are given TOP FIRST, as overlayfs' `lowerdir=` lists them: for an image whose
 * manifest lists layers bottom first, pass `[...layers].reverse()`.
 */
import { spawn } from 'node:child_process';
import { dirname, basename } from 'node:path';
import { error } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';

export interface OverlayStack {
  /** Lower folders, top first. At least one. */
  readonly lowers: readonly string[];
  /** A writable upper folder (a step's snapshot); without it the view is read-only. */
  readonly upper?: string;
  /** overlayfs' work folder: empty, on the same file system as `upper`. Required with `upper`. */
  readonly work?: string;
}

export interface OverlayMount {
  /** `overlay` or, for one lower without an upper (overlayfs needs two lowers then), `bind`. */
  readonly type: 'overlay' | 'bind';
  /** The `-o` option string for `mount -t overlay`, or the source for a read-only bind. */
  readonly options: string;
  /**
   * The folder to run `mount` in: when every lower shares one parent (the store's `layers/`),
   * lowers are named relative to it, which keeps the option string under the kernel's one-page
   * limit for ~60 layers instead of ~30.
   */
  readonly cwd?: string;
}

const FORBIDDEN = /[,:\\\n]/;

/** The overlay mount for a stack, or `overlay-bad-stack` when it cannot be expressed. */
export function overlayMountOptions(stack: OverlayStack): Result<OverlayMount> {
  const { lowers, upper, work } = stack;
  if (lowers.length === 0) return fail(error('overlay-bad-stack', 'an overlay needs at least one lower folder'));
  if ((upper === undefined) !== (work === undefined)) return fail(error('overlay-bad-stack', 'an overlay upper folder needs a work folder, and a work folder an upper one'));
  for (const path of [...lowers, ...(upper ? [upper] : []), ...(work ? [work] : [])]) {
    if (FORBIDDEN.test(path)) return fail(error('overlay-bad-stack', `the path '${path}' cannot be given to overlayfs: it contains ',', ':', '\\' or a newline`));
    if (!path.startsWith('/')) return fail(error('overlay-bad-stack', `the path '${path}' is not absolute`));
  }
  if (lowers.length === 1 && upper === undefined) return ok({ type: 'bind', options: lowers[0] as string });
  const parent = dirname(lowers[0] as string);
  const shared = lowers.every((l) => dirname(l) === parent);
  const lowerdir = shared ? lowers.map((l) => basename(l)).join(':') : lowers.join(':');
  const options = `lowerdir=${lowerdir}${upper ? `,upperdir=${upper},workdir=${work}` : ''}`;
  if (options.length > 4000) return fail(error('overlay-bad-stack', `the overlay options for ${lowers.length} layers are ${options.length} bytes long; the kernel takes at most 4095`, { hint: 'squash some layers' }));
  return ok({ type: 'overlay', options, ...(shared ? { cwd: parent } : {}) });
}

export interface RunInLayerStackOptions extends OverlayStack {
  /** Where the merged view appears inside the namespace (an existing empty folder). */
  readonly target: string;
  /** argv of the command to run once the view is mounted; it sees the merged view at `target`. */
  readonly command: readonly string[];
  readonly signal?: AbortSignal;
}

export interface CommandOutput {
  readonly exitCode: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/**
 * Mount the stack at `target` in a private mount namespace and run `command` there. The mount
 * exists only for the command's lifetime. `mount-failed` when the mount itself fails; otherwise
 * the command's exit code and output, whatever the code.
 */
export async function runInLayerStack(options: RunInLayerStackOptions): Promise<Result<CommandOutput>> {
  const mount = overlayMountOptions(options);
  if (!mount.ok) return mount;
  const { type, options: mountOptions, cwd } = mount.value;
  // $1 = cwd for mount, $2 = options/source, $3 = target, then the command.
  const script =
    type === 'overlay'
      ? 'cd "$1" && mount -t overlay overlay -o "$2" "$3" || exit 254; cd / && shift 3 && exec "$@"'
      : 'mount --bind -o ro "$2" "$3" && mount -o remount,bind,ro "$3" || exit 254; cd / && shift 3 && exec "$@"';
  const args = ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', cwd ?? '/', mountOptions, options.target, ...options.command];
  return new Promise((resolve) => {
    const child = spawn('unshare', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const onAbort = (): void => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      options.signal?.removeEventListener('abort', onAbort);
      resolve(fail(error('mount-failed', `cannot run unshare: ${e.message}`, { hint: 'install util-linux' })));
    });
    child.on('close', (code, signal) => {
      options.signal?.removeEventListener('abort', onAbort);
      if (options.signal?.aborted) return resolve(fail(error('aborted', 'the command in the layer stack was interrupted')));
      if (code === 254 || (code === 1 && err.startsWith('unshare:')))
        return resolve(fail(error('mount-failed', `cannot mount the layer stack at ${options.target}: ${err.trim()}`, { hint: 'overlay mounts need root (or a user namespace) and a kernel with overlayfs' })));
      resolve(ok({ exitCode: code ?? 128 + (signal === null ? 0 : 15), stdout: Buffer.concat(out), stderr: err }));
    });
  });
}
