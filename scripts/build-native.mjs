// Builds what Node lacks, with the system compiler and no downloads:
//   native/starter/  the starter executable (make)
//   native/squashfs/ orchestrator-mksquashfs, our squashfs writer (make)
//   native/addon/    the N-API addon (node-gyp, against the local Node headers)
// Each part is built only when its sources exist. A failure is reported with the command that
// failed; the runtime says which piece is missing when it needs it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let failed = false;

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`orchestrator: native build failed: ${cmd} ${args.join(' ')} (in ${cwd})`);
    failed = true;
  }
}

const starter = join(root, 'native', 'starter');
if (existsSync(join(starter, 'Makefile'))) run('make', ['-s', '-C', starter], root);

const squashfs = join(root, 'native', 'squashfs');
if (existsSync(join(squashfs, 'Makefile'))) run('make', ['-s', '-C', squashfs], root);

const addon = join(root, 'native', 'addon');
if (existsSync(join(addon, 'binding.gyp'))) {
  const gyp = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  // Build against the headers of the Node that runs this script (Debian's nodejs ships them in
  // /usr/include/node), so node-gyp never tries to download a header tarball.
  const nodedir = join(dirname(process.execPath), '..');
  const flags = existsSync(join(nodedir, 'include', 'node', 'common.gypi')) ? ['rebuild', `--nodedir=${nodedir}`] : ['rebuild'];
  if (existsSync(gyp)) run(process.execPath, [gyp, ...flags], addon);
  else run('npx', ['--no-install', 'node-gyp', ...flags], addon);
}

process.exitCode = failed ? 1 : 0;
