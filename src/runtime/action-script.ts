import { unreachable } from '../core/unreachable.js';

/** What a container session runs: the four Singularity actions, or an argv as is (build steps). */
export type ContainerAction = 'exec' | 'run' | 'shell' | 'test' | 'raw';

/**
 * The launcher run through the image's /bin/sh as `sh -c LAUNCHER ACTION ARGS...`. An image's own
 * `/.singularity.d/actions/ACTION` wins (as in 2.4, where the runtime execs it); otherwise the
 * launcher does what those scripts do: source `/.singularity.d/env/*.sh` in order, then the action.
 */
export const ACTION_LAUNCHER = `action="$0"
if [ -f "/.singularity.d/actions/$action" ]; then exec /bin/sh "/.singularity.d/actions/$action" "$@"; fi
for script in /.singularity.d/env/*.sh; do
  if [ -f "$script" ]; then . "$script"; fi
done
case "$action" in
exec) exec "$@" ;;
run)
  if [ -x /.singularity.d/runscript ]; then exec /.singularity.d/runscript "$@"; fi
  echo "No runscript found in container, executing /bin/sh" >&2
  exec /bin/sh "$@" ;;
test)
  if [ -x /.singularity.d/test ]; then exec /.singularity.d/test "$@"; fi
  echo "No test script found in container, exiting" >&2
  exit 0 ;;
shell)
  if [ -n "\${SINGULARITY_SHELL:-}" ] && [ -x "\${SINGULARITY_SHELL}" ]; then exec "$SINGULARITY_SHELL" "$@"; fi
  if [ -x /bin/bash ]; then SHELL=/bin/bash; PS1="Singularity> "; export SHELL PS1; exec /bin/bash --norc "$@"; fi
  SHELL=/bin/sh; export SHELL; exec /bin/sh "$@" ;;
esac
echo "unknown action $action" >&2
exit 255
`;

/** The command vector for an action, and what to exec when the image has no /bin/sh. */
export function actionCommand(action: ContainerAction, args: readonly string[], env: Readonly<Record<string, string>>): { command: string[]; fallback?: string[] } {
  switch (action) {
    case 'raw':
      return { command: [...args] };
    case 'exec':
      return { command: ['/bin/sh', '-c', ACTION_LAUNCHER, action, ...args], fallback: [...args] };
    case 'run':
      return { command: ['/bin/sh', '-c', ACTION_LAUNCHER, action, ...args], fallback: ['/.singularity.d/runscript', ...args] };
    case 'test':
      return { command: ['/bin/sh', '-c', ACTION_LAUNCHER, action, ...args], fallback: ['/.singularity.d/test', ...args] };
    case 'shell':
      return { command: ['/bin/sh', '-c', ACTION_LAUNCHER, action, ...args], fallback: [env['SINGULARITY_SHELL'] ?? '/bin/bash', ...args] };
    default:
      return unreachable(action);
  }
}
