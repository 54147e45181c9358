import { error, type Diagnostic } from '../core/diagnostic.js';

/**
 * Build steps mount overlays, unpack layers with their owners and run %post as root in the image,
 * so the build code runs as uid 0: as root, or as root of the user namespace the CLI enters for a
 * caller that is not root (src/runtime/user-namespace.ts). Reaching a build as another uid (the
 * engine called without the CLI's namespace, or --no-fakeroot) is said once, plainly, before
 * anything is built, with exit status 1.
 */
export function buildNeedsRoot(): Diagnostic {
  return error('needs-root', 'building needs root or a user namespace, and this process has neither', {
    hint: "run it through the orchestrator command, which builds in a user namespace when you are not root, or as root (e.g. 'sudo orchestrator up')",
  });
}
