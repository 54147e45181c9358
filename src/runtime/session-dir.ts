import { lstatSync, mkdirSync, mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';

/** The empty folder a session's tmpfs is mounted on (inside private namespaces only). */
export interface SessionDir {
  readonly path: string;
  /** Made for this session only (the shared one was taken): remove it when the session ends. */
  readonly temporary: boolean;
}

/** A real folder (not a symlink) owned by `uid` that nobody else can write to. */
function isOwnPrivateDir(path: string, uid: number, mode: number): boolean {
  try {
    const st = lstatSync(path);
    return st.isDirectory() && !st.isSymbolicLink() && st.uid === uid && (st.mode & mode) === 0;
  } catch {
    return false;
  }
}

/** `dir` made 0700 if missing; true when it is then the caller's own private folder. */
function ownDir(dir: string, uid: number): boolean {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch {
    // there already (or not makeable): the checks below decide
  }
  return isOwnPrivateDir(dir, uid, 0o077);
}

/**
 * Where the session tmpfs goes. `$XDG_RUNTIME_DIR/orchestrator-session` when that folder is the
 * caller's own; else `TMP/orchestrator-session-UID` when it is the caller's own, private folder;
 * else (another user created that name first, or made it a symlink) a new folder from mkdtemp,
 * verified the same way. A folder that fails the checks is never used, nor written through.
 */
export function sessionDir(env: Readonly<Record<string, string | undefined>>, uid: number = process.getuid?.() ?? 0): Result<SessionDir, Diagnostic> {
  const runtime = env['XDG_RUNTIME_DIR'];
  if (runtime && isAbsolute(runtime) && isOwnPrivateDir(runtime, uid, 0o022)) {
    const dir = join(runtime, 'orchestrator-session');
    if (ownDir(dir, uid)) return ok({ path: dir, temporary: false });
  }
  const shared = join(tmpdir(), `orchestrator-session-${uid}`);
  if (ownDir(shared, uid)) return ok({ path: shared, temporary: false });
  let made: string;
  try {
    made = mkdtempSync(`${shared}-`);
  } catch (e) {
    return fail(error('session-dir-unavailable', `cannot create a session folder in ${tmpdir()}: ${e instanceof Error ? e.message : String(e)}`, { hint: 'set XDG_RUNTIME_DIR or TMPDIR to a folder of your own' }));
  }
  if (!isOwnPrivateDir(made, uid, 0o077)) {
    return fail(error('session-dir-unavailable', `the session folder ${made} is not a private folder of uid ${uid}`, { hint: 'set XDG_RUNTIME_DIR or TMPDIR to a folder of your own' }));
  }
  return ok({ path: made, temporary: true });
}

/** Removes a temporary session folder (empty: the tmpfs was mounted in the session's namespace only). */
export function releaseSessionDir(dir: SessionDir): void {
  if (!dir.temporary) return;
  try {
    rmdirSync(dir.path);
  } catch {
    // not empty or gone: leave it
  }
}
