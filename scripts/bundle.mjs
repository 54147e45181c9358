// Bundles the compiled CLI (dist/cli/main.js and everything it imports, npm dependencies
// included) into dist/bundle/: one module for what every command needs, and a chunk per part
// loaded on demand (the build engine, the registry client, the watcher, ...). Loading ~130
// small modules one by one cost ~50 ms at every start; the bundle loads in about half that. It
// sits at the same depth as dist/cli/, so paths made from import.meta.url
// (`../../native/...`, `../manifest/...`) hold in both.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');
rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  // The manifest worker (big manifests load in a worker thread) sits next to the chunks, where
  // load-project's `new URL('./load-project-worker.js', import.meta.url)` finds it.
  entryPoints: { main: 'dist/cli/main.js', 'load-project-worker': 'dist/manifest/load-project-worker.js' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // CommonJS dependencies (yaml, ...) call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __orchestratorCreateRequire } from 'node:module';\nconst require = __orchestratorCreateRequire(import.meta.url);" },
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
});
