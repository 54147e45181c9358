import { error, type Diagnostic } from '../core/diagnostic.js';

/**
 * Building runs as root until rootless builds land: steps mount overlays, unpack layers with
 * their owners and device files, and run %post as root in the image. Said once, plainly, before
 * anything is built (not as an EPERM from deep inside), with exit status 1: the command line is
 * right (not a usage error, 2), the environment cannot do it.
 */
export function buildNeedsRoot(): Diagnostic {
  return error('needs-root', 'building needs root: build steps mount overlays, keep file owners and run %post as root in the image (rootless builds are not supported yet)', {
    hint: "run it as root (e.g. 'sudo orchestrator up'); 'up --dry-run', and shell/exec/run/test on built images, work without root",
  });
}
