#!/usr/bin/env -S node --
// `./image.simg args` runs this through the image's `#!/usr/bin/env run-singularity` line:
// argv is [image, ...args], which means `orchestrator run image args`.
import { main } from '../dist/bundle/main.js';

process.exitCode = await main(['run', ...process.argv.slice(2)]);
