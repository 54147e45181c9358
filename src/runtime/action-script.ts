import { unreachable } from '../core/unreachable.js';

/** What a container session runs: the four Singularity actions, an instance's startscript, or an argv as is (build steps). */
export type ContainerAction = 'exec' | 'run' | 'shell' | 'test' | 'start' | 'raw';

/**
 * The launcher, run as `SHELL -c LAUNCHER ACTION ARGS...` by the image's bash when it has one,
 * else its /bin/sh (see SHELL_CHOICE). An image's own `/.singularity.d/actions/ACTION` wins (as in
 * 2.4, where the runtime execs it), run by the same shell, so the env files it sources are read by
 * bash too; otherwise the launcher does what those scripts do: source `/.singularity.d/env/*.sh`
 * in order (the user's --env/SINGULARITYENV_ variables, in ORCHESTRATOR_USER_ENV, after the
 * image's own files), apply the PATH asked for on the command line, then the action (the SCIF app's
 * runscript or test when SINGULARITY_APPNAME is set).
 */
export const ACTION_LAUNCHER = `action="$0"
if [ -n "\${BASH_VERSION:-}" ]; then launcher_shell=/bin/bash; else launcher_shell=/bin/sh; fi
if [ -f "/.singularity.d/actions/$action" ]; then exec "$launcher_shell" "/.singularity.d/actions/$action" "$@"; fi
for script in /.singularity.d/env/*.sh; do
  if [ "$script" = /.singularity.d/env/99-runtimevars.sh ]; then eval "\${ORCHESTRATOR_USER_ENV:-}"; ORCHESTRATOR_USER_ENV=; fi
  if [ -f "$script" ]; then . "$script"; fi
done
eval "\${ORCHESTRATOR_USER_ENV:-}"
unset ORCHESTRATOR_USER_ENV
if [ -n "\${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then PATH="$SING_USER_DEFINED_PREPEND_PATH:$PATH"; fi
if [ -n "\${SING_USER_DEFINED_APPEND_PATH:-}" ]; then PATH="$PATH:$SING_USER_DEFINED_APPEND_PATH"; fi
if [ -n "\${SING_USER_DEFINED_PATH:-}" ]; then PATH="$SING_USER_DEFINED_PATH"; fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
app="\${SINGULARITY_APPNAME:-}"
case "$action" in
exec) exec "$@" ;;
run)
  if [ -n "$app" ]; then
    if [ -x "/scif/apps/$app/scif/runscript" ]; then exec "/scif/apps/$app/scif/runscript" "$@"; fi
    echo "No runscript for contained app: $app" >&2
    exit 1
  fi
  if [ -x /.singularity.d/runscript ]; then exec /.singularity.d/runscript "$@"; fi
  echo "No runscript found in container, executing /bin/sh" >&2
  exec /bin/sh "$@" ;;
test)
  if [ -n "$app" ]; then
    if [ -x "/scif/apps/$app/scif/test" ]; then exec "/scif/apps/$app/scif/test" "$@"; fi
    echo "No tests for contained app: $app" >&2
    exit 1
  fi
  if [ -x /.singularity.d/test ]; then exec /.singularity.d/test "$@"; fi
  echo "No test script found in container, exiting" >&2
  exit 0 ;;
start)
  if [ -x /.singularity.d/startscript ]; then exec /.singularity.d/startscript "$@"; fi
  exit 0 ;;
shell)
  if [ -n "\${SINGULARITY_SHELL:-}" ] && [ -x "\${SINGULARITY_SHELL}" ]; then exec "$SINGULARITY_SHELL" "$@"; fi
  if [ -x /bin/bash ]; then SHELL=/bin/bash; PS1="Singularity> "; export SHELL PS1; exec /bin/bash --norc "$@"; fi
  SHELL=/bin/sh; export SHELL; exec /bin/sh "$@" ;;
esac
echo "unknown action $action" >&2
exit 255
`;

/**
 * Run by the image's /bin/sh as `sh -c SHELL_CHOICE LAUNCHER ACTION ARGS...`: hands the launcher
 * to /bin/bash when the image has it, so env files are read by a bash-compatible shell as
 * Apptainer's built-in interpreter reads them (README, Environment); else to /bin/sh.
 */
export const SHELL_CHOICE = 'if [ -x /bin/bash ]; then exec /bin/bash -c "$0" "$@"; fi; exec /bin/sh -c "$0" "$@"';

/** The command vector for an action, and what to exec when the image has no /bin/sh. */
export function actionCommand(action: ContainerAction, args: readonly string[], env: Readonly<Record<string, string>>): { command: string[]; fallback?: string[] } {
  const launch = ['/bin/sh', '-c', SHELL_CHOICE, ACTION_LAUNCHER, action, ...args];
  const app = env['SINGULARITY_APPNAME'];
  switch (action) {
    case 'raw':
      return { command: [...args] };
    case 'exec':
      return { command: launch, fallback: [...args] };
    case 'run':
      return { command: launch, fallback: [app !== undefined ? `/scif/apps/${app}/scif/runscript` : '/.singularity.d/runscript', ...args] };
    case 'test':
      return { command: launch, fallback: [app !== undefined ? `/scif/apps/${app}/scif/test` : '/.singularity.d/test', ...args] };
    case 'start':
      return { command: launch, fallback: ['/.singularity.d/startscript', ...args] };
    case 'shell':
      return { command: launch, fallback: [env['SINGULARITY_SHELL'] ?? '/bin/bash', ...args] };
    default:
      return unreachable(action);
  }
}
