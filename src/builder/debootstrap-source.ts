import { chmod, mkdir, open, readFile, readdir, readlink, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { canonicalJson, digestHex, sha256Digest } from '../core/digest.js';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { lastLines } from '../core/run-command.js';
import { toolFailure } from '../image/tool-failure.js';
import type { Store } from '../store/store.js';
import type { SourceSpec } from './build-source.js';
import { hostAptMirror } from './host-apt-mirror.js';
import { ownNamespaceMapping, type NamespaceMapping } from '../core/id-map.js';
import { runStepSession } from './step-session.js';

/** Bump when what a debootstrap folder holds changes (other options, other clean-up). */
export const DEBOOTSTRAP_SCHEMA = 3;

/**
 * The program that makes a Debian root. `mmdebstrap` is the default (bench/debian-bootstrap.sh:
 * faster than debootstrap as root) and the only one that works in a user namespace;
 * `debootstrap` is kept for root (ORCHESTRATOR_DEBIAN_BOOTSTRAP=debootstrap).
 */
export type BootstrapTool = 'mmdebstrap' | 'debootstrap';

/**
 * How the root is made, which is part of the key (the trees differ):
 * - `debootstrap`: debootstrap --variant=minbase, as real root only (it makes device nodes);
 * - `mmdebstrap`: mmdebstrap --mode=root --variant=minbase, as real root or as uid 0 of a subuid
 *   namespace (a complete fake root); /dev is left empty (the runtime provides /dev);
 * - `mmdebstrap-fakechroot`: mmdebstrap --mode=fakechroot in a single-id namespace, where chown
 *   to any id but 0 fails: fakeroot pretends the owners (FAKEROOTDONTTRYCHOWN), so every file
 *   is owned by 0; the absolute symlinks fakechroot writes with the host path are made relative
 *   to the image's / again.
 */
export type BootstrapMethod = 'debootstrap' | 'mmdebstrap' | 'mmdebstrap-fakechroot';

/** The method for a tool preference in a namespace mapping (only mmdebstrap works in a namespace). */
export function bootstrapMethod(tool: BootstrapTool, mapping: NamespaceMapping): BootstrapMethod {
  if (mapping === 'single-id') return 'mmdebstrap-fakechroot';
  if (mapping === 'subuid') return 'mmdebstrap';
  return tool;
}

/** The tool $ORCHESTRATOR_DEBIAN_BOOTSTRAP asks for ('debootstrap' or 'mmdebstrap'), else the default mmdebstrap. */
export function preferredBootstrapTool(env: NodeJS.ProcessEnv = process.env): BootstrapTool {
  return env['ORCHESTRATOR_DEBIAN_BOOTSTRAP'] === 'debootstrap' ? 'debootstrap' : 'mmdebstrap';
}

/** What a `Bootstrap: debootstrap` header asks for (docs/ARCHITECTURE.md, Manifest and recipes). */

/** What identifies a debootstrap result; its sha256 names the store folder. */
export interface DebootstrapKey {
  readonly suite: string;
  readonly mirror: string;
  /** Sorted, without duplicates. */
  readonly include: readonly string[];
  readonly arch: string;
  readonly method: BootstrapMethod;
  readonly schema: number;
}

export type DebootstrapEvent =
  | { readonly type: 'debootstrap-cached'; readonly suite: string; readonly path: string }
  | { readonly type: 'debootstrap-started'; readonly suite: string; readonly mirror: string; readonly arch: string; readonly method?: BootstrapMethod }
  | { readonly type: 'debootstrap-output'; readonly chunk: string }
  | { readonly type: 'debootstrap-done'; readonly suite: string; readonly path: string; readonly ms: number };

export type DebootstrapEventListener = (event: DebootstrapEvent) => void;

/** The tool and mode a method runs, as the progress line names them. */
const METHOD_TEXT: Readonly<Record<BootstrapMethod, string>> = {
  debootstrap: 'debootstrap',
  mmdebstrap: 'mmdebstrap (root mode)',
  'mmdebstrap-fakechroot': 'mmdebstrap (fakechroot mode)',
};

/**
 * The line `up` and `build` print for a debootstrap event (not for its output): the start names
 * the tool and mode really used (mmdebstrap by default), the end and a cache hit the suite.
 */
export function debootstrapLine(e: DebootstrapEvent): string | undefined {
  switch (e.type) {
    case 'debootstrap-started':
      return `debootstrap ${e.suite} (${e.arch}) from ${e.mirror}${e.method ? ` with ${METHOD_TEXT[e.method]}` : ''} ...`;
    case 'debootstrap-done':
      return `debootstrap ${e.suite}: done in ${(e.ms / 1000).toFixed(1)} s`;
    case 'debootstrap-cached':
      return `debootstrap ${e.suite}: cached`;
    default:
      return undefined;
  }
}

export interface DebootstrapOptions {
  readonly store: Store;
  /** Debian architecture; default: the host's. */
  readonly arch?: string;
  /** The apt configuration folder the mirror is read from when there is no MirrorURL (default /etc/apt). */
  readonly etcApt?: string;
  /** Where `debootstrap` and `mmdebstrap` are looked for (a PATH value); default: $PATH plus the sbin folders. */
  readonly searchPath?: string;
  /** The tool wanted as real root (default: preferredBootstrapTool()); in a user namespace it is always mmdebstrap. */
  readonly tool?: BootstrapTool;
  /** The user namespace this process runs in (default: read from /proc/self/uid_map). */
  readonly mapping?: NamespaceMapping;
  /** debootstrap's whole output goes here (appended). */
  readonly logFile?: string;
  readonly onEvent?: DebootstrapEventListener;
  readonly signal?: AbortSignal;
}

const ARCH_OF: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64', ia32: 'i386', arm: 'armhf', ppc64: 'ppc64el', s390x: 's390x', riscv64: 'riscv64' };

export function hostDebianArch(): string {
  return ARCH_OF[process.arch] ?? process.arch;
}

export { debootstrapRequest, type DebootstrapRequest } from '../recipe/debootstrap-header.js';
import type { DebootstrapRequest } from '../recipe/debootstrap-header.js';
import { findExecutable } from '../core/find-executable.js';

/** The key of a debootstrap result and the hex of its sha256 (the include list's order does not matter). */
export function debootstrapKey(input: { suite: string; mirror: string; include: readonly string[]; arch: string; method: BootstrapMethod }): { key: DebootstrapKey; hex: string } {
  const key: DebootstrapKey = { suite: input.suite, mirror: input.mirror, include: [...new Set(input.include)].sort(), arch: input.arch, method: input.method, schema: DEBOOTSTRAP_SCHEMA };
  return { key, hex: digestHex(sha256Digest(canonicalJson(key))) };
}

/** `text` with the user and password of any URL in it replaced (a private mirror's credentials never reach messages). */
export function withoutCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s@]+@/gi, '$1***@');
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

function defaultSearchPath(): string {
  return [process.env['PATH'] ?? '', '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean).join(delimiter);
}

/**
 * Renames the finished folder `from` to `dest`. When another process published `dest` first, its
 * folder is as good as ours: "already there" is success, and `from` stays for the caller to remove.
 */
export async function publishFolder(from: string, dest: string): Promise<'published' | 'already-there'> {
  try {
    await rename(from, dest);
    return 'published';
  } catch (e) {
    if (['EEXIST', 'ENOTEMPTY'].includes((e as NodeJS.ErrnoException).code ?? '')) return 'already-there';
    throw e;
  }
}

/** Writes `rel` under `root` as a new regular file (never through a symlink the root holds). */
async function replaceFile(root: string, rel: string, text: string): Promise<void> {
  const path = join(root, rel);
  await rm(path, { force: true });
  await writeFile(path, text, { mode: 0o644, flag: 'wx' });
}

/** Removes what /dev holds: the runtime gives every container its /dev (the host's, or a tmpfs with the usual nodes). */
async function emptyDev(root: string): Promise<void> {
  await rm(join(root, 'dev'), { recursive: true, force: true });
  await mkdir(join(root, 'dev'));
  await chmod(join(root, 'dev'), 0o755);
}

/** Symlinks under `dir` whose target lies in `hostRoot` (fakechroot writes them so) point into the image's / again. */
async function unprefixLinks(dir: string, hostRoot: string): Promise<number> {
  let fixed = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) fixed += await unprefixLinks(path, hostRoot);
    else if (e.isSymbolicLink()) {
      const target = await readlink(path);
      if (target !== hostRoot && !target.startsWith(`${hostRoot}/`)) continue;
      await rm(path);
      await symlink(target.slice(hostRoot.length) || '/', path);
      fixed++;
    }
  }
  return fixed;
}

/**
 * What follows debootstrap: as Singularity's agent, apt in the image uses the same mirror and suite
 * (`apt-get update && apt-get install` works in %post); like registry base images, the root keeps
 * no downloaded .deb files, no package lists, and nothing of the build host (its hostname and
 * resolv.conf, which debootstrap copies; the runtime binds the host's resolv.conf).
 */
async function finishRoot(root: string, mirror: string, suite: string): Promise<void> {
  await replaceFile(root, 'etc/apt/sources.list', `deb ${mirror} ${suite} main\n`);
  await replaceFile(root, 'etc/resolv.conf', '');
  await rm(join(root, 'etc/hostname'), { force: true });
  const archives = join(root, 'var/cache/apt/archives');
  for (const name of await readdir(archives).catch(() => [] as string[])) {
    if (name.endsWith('.deb')) await rm(join(archives, name), { force: true });
  }
  const lists = join(root, 'var/lib/apt/lists');
  for (const name of await readdir(lists).catch(() => [] as string[])) {
    if (name !== 'partial' && name !== 'lock') await rm(join(lists, name), { recursive: true, force: true });
  }
}

/**
 * A Debian or Ubuntu root made by `debootstrap --variant=minbase` (Singularity's debootstrap agent),
 * kept in the store as `snapshots/debootstrap-<sha256 of the key>` so it is made once per
 * (suite, mirror, include list, arch). It runs in a private mount session (the /proc and /sys that
 * debootstrap mounts go away with it); then finishRoot. A failure leaves nothing in the store.
 * Over 80 lines on purpose: one straight sequence (find the tool, run it, check, finish, publish)
 * whose temp folder and in-process sharing are cleaned up in one place.
 */
/** Debootstraps running in this process, by store and key. */
const RUNNING = new Map<string, Promise<Result<SourceSpec, Diagnostic>>>();

export async function debootstrapSource(request: DebootstrapRequest, options: DebootstrapOptions): Promise<Result<SourceSpec, Diagnostic>> {
  const emit = options.onEvent ?? (() => undefined);
  const arch = options.arch ?? hostDebianArch();
  let mirror = request.mirror;
  if (mirror === undefined) {
    const host = await hostAptMirror(request.suite, options.etcApt !== undefined ? { etcApt: options.etcApt } : {});
    if (!host) {
      return fail(
        error('debootstrap-no-mirror', `no package mirror for '${request.suite}': the recipe has no MirrorURL and the host's apt configuration has no 'deb' source`, {
          location: request.location,
          hint: "add 'MirrorURL: <the URL of a Debian or Ubuntu mirror>' to the recipe's header",
        }),
      );
    }
    mirror = host.uri;
  }
  const method = bootstrapMethod(options.tool ?? preferredBootstrapTool(), options.mapping ?? ownNamespaceMapping());
  const { key, hex } = debootstrapKey({ suite: request.suite, mirror, include: request.include, arch, method });
  const description = `debootstrap ${request.suite} (${arch}${key.include.length > 0 ? `, +${key.include.join(',')}` : ''})`;
  // The recorded key names the mirror without credentials; the digest covers the whole URL.
  const recorded = { ...key, mirror: withoutCredentials(key.mirror), digest: hex };
  const spec = (path: string): SourceSpec => ({ kind: 'layers', key: { debootstrap: recorded }, layers: [path], description });
  const dest = options.store.snapshotPath(`debootstrap-${hex}`);
  if (await isDir(dest)) {
    emit({ type: 'debootstrap-cached', suite: request.suite, path: dest });
    return ok(spec(dest));
  }

  // One debootstrap per key at a time in this process: targets that share a base wait for it.
  const runningKey = `${options.store.root}\0${hex}`;
  const other = RUNNING.get(runningKey);
  if (other) {
    await other;
    if (await isDir(dest)) {
      emit({ type: 'debootstrap-cached', suite: request.suite, path: dest });
      return ok(spec(dest));
    }
  }
  const run = async (): Promise<Result<SourceSpec, Diagnostic>> => {
    const program = method === 'debootstrap' ? 'debootstrap' : 'mmdebstrap';
    const searchPath = options.searchPath ?? defaultSearchPath();
    const what = `${program} of '${request.suite}'`;
    // mmdebstrap --mode=fakechroot runs itself again under `fakechroot fakeroot`.
    for (const needed of method === 'mmdebstrap-fakechroot' ? [program, 'fakechroot', 'fakeroot'] : [program]) {
      if ((await findExecutable(needed, searchPath)) !== undefined) continue;
      const d = toolFailure(needed, what, { kind: 'spawn-failed', code: 'ENOENT', message: 'not found', output: '' })!;
      return fail({ ...d, ...(request.location ? { location: request.location } : {}) });
    }
    const tool = (await findExecutable(program, searchPath))!;

    if (options.signal?.aborted) return fail(error('interrupted', `${what}: interrupted`));
    const started = Date.now();
    emit({ type: 'debootstrap-started', suite: request.suite, mirror: withoutCredentials(mirror), arch, method });
    const tmp = await options.store.makeTempDir('debootstrap');
    const root = join(tmp, 'root');
    try {
      await mkdir(root);
      await chmod(root, 0o755); // the image's /, whatever the umask
      const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', HOME: '/root' };
      for (const name of ['http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']) {
        const v = process.env[name];
        if (v !== undefined) env[name] = v;
      }
      const include = key.include.length > 0 ? [`--include=${key.include.join(',')}`] : [];
      const args =
        method === 'debootstrap'
          ? ['--variant=minbase', ...include, `--arch=${arch}`, request.suite, root, mirror]
          : [method === 'mmdebstrap' ? '--mode=root' : '--mode=fakechroot', '--variant=minbase', ...include, `--architectures=${arch}`, request.suite, root, mirror];
      // In a single-id namespace a chown to any id but 0 fails with EINVAL, which fakeroot does not forgive: it must not try.
      if (method === 'mmdebstrap-fakechroot') env['FAKEROOTDONTTRYCHOWN'] = '1';
      // Whole lines, without credentials, to the log and the listener.
      const log = options.logFile !== undefined ? await open(options.logFile, 'a') : undefined;
      let pending = '';
      const flush = async (text: string): Promise<void> => {
        if (text === '') return;
        const clean = withoutCredentials(text);
        emit({ type: 'debootstrap-output', chunk: clean });
        await log?.write(clean);
      };
      let writes = Promise.resolve();
      const outcome = await runStepSession({
        ops: [],
        command: [tool, ...args],
        env,
        onOutput: (chunk) => {
          pending += chunk.toString('utf8');
          const cut = pending.lastIndexOf('\n') + 1;
          const whole = pending.slice(0, cut);
          pending = pending.slice(cut);
          writes = writes.then(() => flush(whole));
        },
        ...(options.signal ? { signal: options.signal } : {}),
      }).finally(async () => {
        await writes.then(() => flush(pending));
        await log?.close();
      });
      const failure = toolFailure(program, what, outcome);
      if (failure) {
        // debootstrap's own log says more than its output when the second stage failed.
        const log = failure.reason === 'tool-failed' ? await readFile(join(root, 'debootstrap', 'debootstrap.log'), 'utf8').catch(() => '') : '';
        const message = log.trim() !== '' ? `${failure.message}\ndebootstrap.log ends with:\n${lastLines(log, 15)}` : failure.message;
        return fail({
          ...failure,
          message: withoutCredentials(message),
          ...(request.location ? { location: request.location } : {}),
          ...(failure.reason === 'tool-failed' ? { hint: `the lines above are ${program}'s own output; check OSVersion (a suite the mirror has, e.g. bookworm) and the mirror ${withoutCredentials(mirror)}` } : {}),
        });
      }
      if (method === 'mmdebstrap-fakechroot') await unprefixLinks(root, await realpath(root));
      if (method !== 'debootstrap') await emptyDev(root);
      await finishRoot(root, mirror, request.suite);
      await publishFolder(root, dest);
      emit({ type: 'debootstrap-done', suite: request.suite, path: dest, ms: Date.now() - started });
      return ok(spec(dest));
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  };
  const promise = run();
  RUNNING.set(runningKey, promise);
  try {
    return await promise;
  } finally {
    if (RUNNING.get(runningKey) === promise) RUNNING.delete(runningKey);
  }
}
