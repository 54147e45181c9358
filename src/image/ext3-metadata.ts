import { chmod, lchown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { lastLines, runCommand } from '../core/run-command.js';
import type { DetectedImage } from './detect-image.js';

/** The folders of a tree, relative (`''` is the root), parents first. */
async function folders(root: string, rel = ''): Promise<string[]> {
  const out = [rel];
  for (const e of await readdir(join(root, rel), { withFileTypes: true })) if (e.isDirectory()) out.push(...(await folders(root, rel === '' ? e.name : `${rel}/${e.name}`)));
  return out;
}

/**
 * Gives a tree that `debugfs rdump` extracted from an ext3 image the owners and modes of the
 * image: rdump drops setuid, setgid and sticky bits and leaves symbolic links owned by root. One
 * `debugfs` run lists every folder (`ls -p`: `/inode/mode/uid/gid/name/size/`), then each entry is
 * chowned (links too) and chmodded (after the chown, which clears setuid bits). With `singleId`
 * owners other than 0 are left as 0 (rdump's, as the namespace's 0) and counted, with device files.
 */
export async function restoreExt3Metadata(
  image: DetectedImage,
  root: string,
  options: { signal?: AbortSignal; singleId?: boolean } = {},
): Promise<Result<{ ownersFolded: number; devicesSkipped: number }, Diagnostic>> {
  let ownersFolded = 0;
  let devicesSkipped = 0;
  const dirs = await folders(root);
  const commands = dirs.map((d) => `ls -p "/${d.replace(/(["\\])/g, '\\$1')}"`).join('\n') + '\n';
  const chunks: Buffer[] = [];
  const device = image.offset > 0 ? `${image.path}?offset=${image.offset}` : image.path;
  const r = await runCommand('debugfs', ['-f', '-', device], {
    input: commands,
    onOutput: (c, stream) => {
      if (stream === 'stdout') chunks.push(c);
    },
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (r.kind !== 'exited' || r.code !== 0) {
    return fail(error('image-extract-failed', `could not read the owners and modes of ${image.path} with debugfs: ${lastLines(r.output, 1) || r.kind}`, { hint: 'is debugfs installed (scripts/install-system-deps.sh)?' }));
  }
  let dir: string | undefined;
  for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
    const cmd = /^debugfs: ls -p "\/(.*)"$/.exec(line);
    if (cmd) {
      dir = cmd[1]!.replace(/\\(["\\])/g, '$1');
      continue;
    }
    const m = /^\/\d+\/([0-7]+)\/(\d+)\/(\d+)\/(.*)\/[^/]*\/$/.exec(line);
    if (!m || dir === undefined) continue;
    const name = m[4]!;
    if (name === '..' || (name === '.' && dir !== '')) continue;
    const mode = Number.parseInt(m[1]!, 8);
    const type = mode & 0o170000;
    // rdump makes no device files (and in a user namespace none could be made).
    if (type === 0o020000 || type === 0o060000) devicesSkipped += 1;
    const path = name === '.' ? root : join(root, dir, name);
    const st = await lstat(path).catch(() => undefined);
    if (!st) continue;
    const [uid, gid] = [Number(m[2]), Number(m[3])];
    // Single-id mode (a user namespace where only id 0 exists): every owner is 0, counted when it was not.
    if (options.singleId === true && (uid !== 0 || gid !== 0)) ownersFolded += 1;
    else {
      try {
        await lchown(path, uid, gid);
      } catch (e) {
        // An id the user namespace does not map (subuid mode: above 65535) stays rdump's 0.
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      }
    }
    if (!st.isSymbolicLink()) await chmod(path, mode & 0o7777);
  }
  return ok({ ownersFolded, devicesSkipped });
}
