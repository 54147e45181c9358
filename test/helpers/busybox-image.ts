import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync, writeSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';

/** The busybox applets the test images link. */
const APPLETS = ['sh', 'cat', 'touch', 'ls', 'id', 'echo', 'sleep', 'env', 'pwd', 'mkdir', 'rm', 'test', 'true', 'false', 'printf', 'grep', 'stat', 'wc', 'kill'];

export const HEADER = '#!/usr/bin/env run-singularity\n';

/** Action scripts as Singularity 2.4 lays them out; they export VIA_ACTIONS=1 so tests can tell. */
const ACTIONS: Record<string, string> = {
  exec: 'for script in /.singularity.d/env/*.sh; do\n  if [ -f "$script" ]; then . "$script"; fi\ndone\nVIA_ACTIONS=1; export VIA_ACTIONS\nexec "$@"\n',
  run: 'for script in /.singularity.d/env/*.sh; do\n  if [ -f "$script" ]; then . "$script"; fi\ndone\nVIA_ACTIONS=1; export VIA_ACTIONS\nif [ -x /.singularity.d/runscript ]; then exec /.singularity.d/runscript "$@"; fi\necho "No runscript" >&2\nexit 1\n',
  shell: 'for script in /.singularity.d/env/*.sh; do\n  if [ -f "$script" ]; then . "$script"; fi\ndone\nVIA_ACTIONS=1; export VIA_ACTIONS\nif [ -n "${SINGULARITY_SHELL:-}" ] && [ -x "$SINGULARITY_SHELL" ]; then exec "$SINGULARITY_SHELL" "$@"; fi\nif [ -x /bin/bash ]; then exec /bin/bash --norc "$@"; fi\nexec /bin/sh "$@"\n',
  test: 'for script in /.singularity.d/env/*.sh; do\n  if [ -f "$script" ]; then . "$script"; fi\ndone\nVIA_ACTIONS=1; export VIA_ACTIONS\nif [ -x /.singularity.d/test ]; then exec /.singularity.d/test "$@"; fi\necho "No test" >&2\nexit 0\n',
};

function write(path: string, text: string, mode = 0o644): void {
  writeFileSync(path, text);
  chmodSync(path, mode);
}

/** A busybox-static root file system with a hand-written /.singularity.d. */
export function makeBusyboxTree(dir: string, options: { actions?: boolean } = {}): void {
  for (const d of ['bin', 'etc', 'root', 'home', 'proc', 'sys', 'dev', 'tmp', 'var/tmp', '.singularity.d/env', '.singularity.d/actions']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  chmodSync(join(dir, 'var/tmp'), 0o1777);
  chmodSync(join(dir, 'root'), 0o700);
  copyFileSync('/bin/busybox', join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', join(dir, 'bin', a));
  write(join(dir, 'etc/os-release'), 'NAME="Busybox Test"\nID=busybox-test\n');
  write(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  write(join(dir, 'etc/group'), 'root:x:0:\n');
  write(join(dir, 'root-only.txt'), 'secret\n', 0o600);
  const sd = join(dir, '.singularity.d');
  write(join(sd, 'env/01-base.sh'), '#!/bin/sh\n');
  write(join(sd, 'env/10-docker2singularity.sh'), '#!/bin/sh\nORDER="${ORDER:-}10"; export ORDER\n');
  write(join(sd, 'env/90-environment.sh'), '#!/bin/sh\n# Custom environment shell code should follow\nORDER="${ORDER:-}90"; FROM_ENV_FILE=yes; export ORDER FROM_ENV_FILE\n');
  write(join(sd, 'runscript'), '#!/bin/sh\necho "runscript: $# args: $*"\nexit 0\n', 0o755);
  write(join(sd, 'test'), '#!/bin/sh\necho "test script ran"\nexit 3\n', 0o755);
  write(join(sd, 'runscript.help'), 'Usage: run IMAGE [ARGS...]\nPrints its arguments.\n');
  write(join(sd, 'labels.json'), JSON.stringify({ 'org.label-schema.schema-version': '1.0', MAINTAINER: 'tests' }, null, 2) + '\n');
  write(join(sd, 'Singularity'), 'Bootstrap: scratch\n\n%runscript\n    echo "runscript: $# args: $*"\n');
  if (options.actions !== false) for (const [name, text] of Object.entries(ACTIONS)) write(join(sd, 'actions', name), `#!/bin/sh\n${text}`, 0o755);
  for (const [link, target] of [['singularity', '.singularity.d/runscript'], ['environment', '.singularity.d/env/90-environment.sh'], ['.exec', '.singularity.d/actions/exec'], ['.run', '.singularity.d/actions/run'], ['.shell', '.singularity.d/actions/shell'], ['.test', '.singularity.d/actions/test']] as const) {
    symlinkSync(target, join(dir, link));
  }
}

function withHeader(src: string, dst: string): void {
  const fd = openSync(dst, 'w', 0o755);
  writeSync(fd, HEADER);
  writeSync(fd, readFileSync(src));
  closeSync(fd);
}

export interface TestImages {
  readonly sandbox: string;
  readonly squashfs: string;
  readonly squashfsHeader: string;
  readonly ext3: string;
  readonly ext3Header: string;
}

/** The five test images in `dir`: a sandbox, squashfs and ext3 each with and without the header. */
export function buildTestImages(dir: string): TestImages {
  const sandbox = join(dir, 'sandbox');
  makeBusyboxTree(sandbox);
  const squashfs = join(dir, 'image.sqfs');
  execFileSync('mksquashfs', [sandbox, squashfs, '-noappend', '-quiet', '-no-progress'], { stdio: 'ignore' });
  const squashfsHeader = join(dir, 'image.simg');
  withHeader(squashfs, squashfsHeader);
  const ext3 = join(dir, 'image.ext3');
  execFileSync('mkfs.ext3', ['-q', '-F', '-d', sandbox, ext3, '16M'], { stdio: 'ignore' });
  const ext3Header = join(dir, 'image.img');
  withHeader(ext3, ext3Header);
  return { sandbox, squashfs, squashfsHeader, ext3, ext3Header };
}

/** sha256 of a file, or of a folder tree (paths, modes, owners, link targets, contents). */
export function digestOf(path: string): string {
  const hash = createHash('sha256');
  const walk = (p: string, rel: string): void => {
    const st = lstatSync(p);
    hash.update(`${rel}\0${st.mode}\0${st.uid}\0${st.gid}\0`);
    if (st.isSymbolicLink()) hash.update(readlinkSync(p));
    else if (st.isFile()) hash.update(readFileSync(p));
    else if (st.isDirectory()) for (const name of readdirSync(p).sort()) walk(join(p, name), `${rel}/${name}`);
  };
  walk(path, '');
  return hash.digest('hex');
}
