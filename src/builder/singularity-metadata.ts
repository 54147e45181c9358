import { canonicalJson } from '../core/digest.js';
import type { Stage } from '../recipe/model.js';
import { appNames, labelsOf, scriptOf, type Script } from '../recipe/sections.js';
import type { ImageConfig } from './image-config.js';
import { doubleQuoteEscape, shellQuote } from './shell-quote.js';
import type { TreeEntry } from './tree-entry.js';
import { nameTable } from '../core/name-table.js';

/**
 * The `/.singularity.d` of an image, as Singularity 2.4 and Apptainer lay it out, as a pure list
 * of entries. Env files are sourced in lexical order by the action scripts:
 * 01-base, 10-docker2singularity (base image Env), 90-environment (%environment),
 * 91-environment (what %post wrote to $SINGULARITY_ENVIRONMENT: made by the %post step),
 * 94-appsbase (SCIF app variables), 95-apps (the active app), 99-base, 99-runtimevars.
 */
export interface MetadataInput {
  /** The recipe stage being built (the last stage of a multi-stage recipe); absent for a plain image. */
  readonly stage?: Stage;
  /** The recipe as written, stored as /.singularity.d/Singularity. */
  readonly recipeText?: string;
  /** Config of the source image (docker://, oci...), for env, runscript and labels. */
  readonly imageConfig?: ImageConfig;
  /** What the source image already had in /.singularity.d (a local image, another target). */
  readonly previous?: PreviousMetadata;
  /** ISO 8601 build date for labels (from SOURCE_DATE_EPOCH for reproducible builds). */
  readonly buildDate: string;
  readonly toolVersion: string;
  /** The target architecture in Go's naming (`amd64`). */
  readonly arch: string;
  /**
   * The source used when it is not the stage header's (a manifest `from:` wins over the header):
   * the `deffile.bootstrap`/`deffile.from` labels then name it, and the header's fields are kept
   * as `deffile.header.KEY`.
   */
  readonly source?: { readonly bootstrap: string; readonly from: string };
}

export interface PreviousMetadata {
  readonly environment?: string;
  readonly runscript?: string;
  readonly startscript?: string;
  readonly test?: string;
  readonly help?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly dockerEnv?: string;
}

/**
 * Sources the env files in order. The variables the user set (--env, --env-file,
 * SINGULARITYENV_X) come as assignments in ORCHESTRATOR_USER_ENV and are applied after the image's
 * own files and before 99-runtimevars.sh, so they win over %environment, as in Apptainer.
 */
const ENV_LOOP = `for script in /.singularity.d/env/*.sh; do
    if [ "$script" = /.singularity.d/env/99-runtimevars.sh ]; then
        eval "\${ORCHESTRATOR_USER_ENV:-}"
        ORCHESTRATOR_USER_ENV=
    fi
    if [ -f "$script" ]; then
        . "$script"
    fi
done
eval "\${ORCHESTRATOR_USER_ENV:-}"
unset ORCHESTRATOR_USER_ENV
`;

const APPNAME = '${SINGULARITY_APPNAME:-${APPTAINER_APPNAME:-}}';

const ACTIONS: Readonly<Record<string, string>> = {
  exec: `#!/bin/sh

${ENV_LOOP}
exec "$@"
`,
  run: `#!/bin/sh

${ENV_LOOP}
app="${APPNAME}"
if test -n "$app"; then
    if test -x "/scif/apps/$app/scif/runscript"; then
        exec "/scif/apps/$app/scif/runscript" "$@"
    fi
    echo "No runscript for contained app: $app" 1>&2
    exit 1
elif test -x /.singularity.d/runscript; then
    exec /.singularity.d/runscript "$@"
else
    echo "No Singularity runscript found, executing /bin/sh" 1>&2
    exec /bin/sh "$@"
fi
`,
  shell: `#!/bin/sh

${ENV_LOOP}
shell="\${SINGULARITY_SHELL:-\${APPTAINER_SHELL:-}}"
if test -n "$shell" -a -x "$shell"; then
    exec "$shell" "$@"
elif test -x /bin/bash; then
    SHELL=/bin/bash
    PS1="Singularity> "
    export SHELL PS1
    exec /bin/bash --norc "$@"
elif test -x /bin/sh; then
    SHELL=/bin/sh
    export SHELL
    exec /bin/sh "$@"
fi
echo "ERROR: /bin/sh does not exist in container" 1>&2
exit 1
`,
  start: `#!/bin/sh

${ENV_LOOP}
if test -x /.singularity.d/startscript; then
    exec /.singularity.d/startscript "$@"
fi
`,
  test: `#!/bin/sh

${ENV_LOOP}
app="${APPNAME}"
if test -n "$app"; then
    if test -x "/scif/apps/$app/scif/test"; then
        exec "/scif/apps/$app/scif/test" "$@"
    fi
    echo "No tests for contained app: $app" 1>&2
    exit 1
elif test -x /.singularity.d/test; then
    exec /.singularity.d/test "$@"
else
    echo "No test found in container, executing /bin/sh -c true" 1>&2
    exec /bin/sh -c true
fi
`,
};

const ENV_01 = `#!/bin/sh
# Base environment of every Singularity image (sourced first).
`;

/**
 * The active SCIF app (`--app NAME` sets SINGULARITY_APPNAME): its folders come first on PATH and
 * LD_LIBRARY_PATH, then its own env files (scif/env/*.sh: 01-base.sh with the SCIF variables, then
 * 90-environment.sh from %appenv) are sourced in order, as Apptainer's 95-apps.sh does.
 */
const ENV_95 = `#!/bin/sh
# The active SCIF app (--app NAME).
app="${APPNAME}"
if test -n "$app"; then
    if test -d "/scif/apps/$app/"; then
        SINGULARITY_APPNAME="$app"
        APPTAINER_APPNAME="$app"
        SCIF_APPS=/scif/apps
        export SINGULARITY_APPNAME APPTAINER_APPNAME SCIF_APPS
        PATH="/scif/apps/$app:$PATH"
        if test -d "/scif/apps/$app/bin"; then
            PATH="/scif/apps/$app/bin:$PATH"
        fi
        if test -d "/scif/apps/$app/lib"; then
            LD_LIBRARY_PATH="/scif/apps/$app/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            export LD_LIBRARY_PATH
        fi
        for appenv in "/scif/apps/$app/scif/env/"*.sh; do
            if test -f "$appenv"; then
                . "$appenv"
            fi
        done
        unset appenv
        export PATH
    else
        echo "Could not locate the container application: $app" 1>&2
        exit 1
    fi
fi
unset app
`;

/** An app's scif/env/01-base.sh: the SCIF variables of the app (the SCIF spec, Apptainer's layout). */
export function appBaseEnv(app: string): string {
  const q = shellQuote;
  return [
    '#!/bin/sh',
    `SCIF_APPNAME=${q(app)}`,
    `SCIF_APPROOT=${q(`/scif/apps/${app}`)}`,
    `SCIF_APPMETA=${q(`/scif/apps/${app}/scif`)}`,
    'SCIF_DATA=/scif/data',
    `SCIF_APPDATA=${q(`/scif/data/${app}`)}`,
    `SCIF_APPINPUT=${q(`/scif/data/${app}/input`)}`,
    `SCIF_APPOUTPUT=${q(`/scif/data/${app}/output`)}`,
    'export SCIF_APPNAME SCIF_APPROOT SCIF_APPMETA SCIF_DATA SCIF_APPDATA SCIF_APPINPUT SCIF_APPOUTPUT',
  ].join('\n') + '\n';
}

/** 94-appsbase.sh: every app's folders as SCIF_APP*_NAME (name with other characters as `_`). */
function appsBaseEnv(apps: readonly { name: string; env: boolean; run: boolean }[]): string {
  const lines = ['#!/bin/sh', '# SCIF apps of this image.'];
  for (const app of apps) {
    const v = app.name.replace(/[^A-Za-z0-9_]/g, '_');
    const vars: [string, string][] = [
      ['APPDATA', `/scif/data/${app.name}`],
      ['APPMETA', `/scif/apps/${app.name}/scif`],
      ['APPROOT', `/scif/apps/${app.name}`],
      ['APPBIN', `/scif/apps/${app.name}/bin`],
      ['APPLIB', `/scif/apps/${app.name}/lib`],
      ...(app.env ? [['APPENV', `/scif/apps/${app.name}/scif/env/90-environment.sh`] as [string, string]] : []),
      ['APPLABELS', `/scif/apps/${app.name}/scif/labels.json`],
      ...(app.run ? [['APPRUN', `/scif/apps/${app.name}/scif/runscript`] as [string, string]] : []),
    ];
    lines.push(`## App Global Exports For: ${app.name}`);
    for (const [k, path] of vars) lines.push(`SCIF_${k}_${v}=${shellQuote(path)}`);
    lines.push(`export ${vars.map(([k]) => `SCIF_${k}_${v}`).join(' ')}`);
  }
  return lines.join('\n') + '\n';
}

const ENV_99 = `#!/bin/sh
# Sourced last: libraries bound in by the runtime, and the prompt.
if [ -z "\${LD_LIBRARY_PATH:-}" ]; then
    LD_LIBRARY_PATH=/.singularity.d/libs
else
    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"
fi
PS1="Singularity> "
export LD_LIBRARY_PATH PS1
`;

const ENV_99_RUNTIME = `#!/bin/sh
# PATH changes asked for on the command line (SINGULARITYENV_PREPEND_PATH and friends).
if [ -n "\${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then
    PATH="\${SING_USER_DEFINED_PREPEND_PATH}:\${PATH}"
fi
if [ -n "\${SING_USER_DEFINED_APPEND_PATH:-}" ]; then
    PATH="\${PATH}:\${SING_USER_DEFINED_APPEND_PATH}"
fi
if [ -n "\${SING_USER_DEFINED_PATH:-}" ]; then
    PATH="\${SING_USER_DEFINED_PATH}"
fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
`;

const ENV_90_HEAD = '#!/bin/sh\n# Custom environment shell code should follow\n\n';

const NO_RUNSCRIPT = '#!/bin/sh\n\necho "There is no runscript defined for this container"\n';

/** `#!/bin/sh` or the `-c SHELL` of a section (`%runscript -c /bin/bash`). */
function shebang(script: Script): string {
  const m = /(?:^|\s)-c\s+(\S+)/.exec(script.args);
  return `#!${m ? m[1] : '/bin/sh'}\n\n`;
}

function scriptFile(script: Script): string {
  return `${shebang(script)}${script.text}\n`;
}

/** Docker/OCI Env as /bin/sh: the host's value wins, except for PATH (as Apptainer maps it). */
export function dockerEnvScript(env: readonly string[]): string {
  const lines = ['#!/bin/sh', '# Environment of the source image (Docker/OCI config Env).'];
  for (const kv of env) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    const key = kv.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) continue;
    const value = doubleQuoteEscape(kv.slice(eq + 1));
    lines.push(key === 'PATH' ? `export PATH="${value}"` : `export ${key}="\${${key}:-"${value}"}"`);
  }
  return lines.join('\n') + '\n';
}

/** Docker's ENTRYPOINT/CMD rules as a runscript: arguments replace CMD, ENTRYPOINT stays. */
export function dockerRunscript(config: ImageConfig): string {
  const entrypoint = config.entrypoint ?? [];
  const cmd = config.cmd ?? [];
  const words = (ws: readonly string[]) => ws.map(shellQuote).join(' ');
  const lines = ['#!/bin/sh', '# From the source image: ENTRYPOINT and CMD, with Docker\'s rules.'];
  if (entrypoint.length === 0 && cmd.length === 0) {
    lines.push('exec /bin/sh "$@"');
  } else if (entrypoint.length === 0) {
    lines.push('if [ $# -gt 0 ]; then', '    exec "$@"', 'fi', `exec ${words(cmd)}`);
  } else {
    lines.push('if [ $# -gt 0 ]; then', `    exec ${words(entrypoint)} "$@"`, 'fi', `exec ${words([...entrypoint, ...cmd])}`);
  }
  return lines.join('\n') + '\n';
}

function json(value: unknown): string {
  // Sorted keys, indented: stable bytes for reproducible images, readable for people.
  return JSON.stringify(JSON.parse(canonicalJson(value)), null, 4) + '\n';
}

function labelsFromStage(stage: Stage | undefined, app?: string): Record<string, string> {
  const out = nameTable<string>();
  if (stage) for (const l of labelsOf(stage, app)) out[l.key] = l.value;
  return out;
}

/**
 * Every entry of /.singularity.d for one image. Over 80 lines on purpose: a flat list of files in
 * the order Singularity lays them out, each one or two lines; split, the layout is harder to see.
 */
export function singularityMetadata(input: MetadataInput): TreeEntry[] {
  const { stage, previous, imageConfig } = input;
  const entries: TreeEntry[] = [];
  const dir = (path: string, mode = 0o755) => entries.push({ type: 'dir', path, mode });
  const file = (path: string, content: string, mode = 0o755) => entries.push({ type: 'file', path, mode, content });
  const link = (path: string, target: string) => entries.push({ type: 'symlink', path, target });

  for (const d of ['.singularity.d', '.singularity.d/actions', '.singularity.d/env', '.singularity.d/libs']) dir(d);
  for (const [name, content] of Object.entries(ACTIONS)) file(`.singularity.d/actions/${name}`, content);

  file('.singularity.d/env/01-base.sh', ENV_01);
  const dockerEnv = imageConfig?.env && imageConfig.env.length > 0 ? dockerEnvScript(imageConfig.env) : previous?.dockerEnv;
  if (dockerEnv !== undefined) file('.singularity.d/env/10-docker2singularity.sh', dockerEnv);

  const environment = stage ? scriptOf(stage, 'environment') : undefined;
  let env90 = previous?.environment ?? ENV_90_HEAD;
  if (environment) env90 = `${env90.replace(/\n*$/, '\n')}${environment.text}\n`;
  file('.singularity.d/env/90-environment.sh', env90);

  const apps = stage ? appNames(stage) : [];
  file('.singularity.d/env/94-appsbase.sh', appsBaseEnv(apps.map((name) => ({ name, env: stage !== undefined && scriptOf(stage, 'appenv', name) !== undefined, run: stage !== undefined && scriptOf(stage, 'apprun', name) !== undefined }))));
  file('.singularity.d/env/95-apps.sh', ENV_95);
  file('.singularity.d/env/99-base.sh', ENV_99);
  file('.singularity.d/env/99-runtimevars.sh', ENV_99_RUNTIME);

  const runscript = stage ? scriptOf(stage, 'runscript') : undefined;
  file(
    '.singularity.d/runscript',
    runscript ? scriptFile(runscript) : (previous?.runscript ?? (imageConfig ? dockerRunscript(imageConfig) : NO_RUNSCRIPT)),
  );
  const startscript = stage ? scriptOf(stage, 'startscript') : undefined;
  file('.singularity.d/startscript', startscript ? scriptFile(startscript) : (previous?.startscript ?? '#!/bin/sh\n'));
  const test = stage ? scriptOf(stage, 'test') : undefined;
  const testText = test ? scriptFile(test) : previous?.test;
  if (testText !== undefined) file('.singularity.d/test', testText);
  const help = stage ? scriptOf(stage, 'help') : undefined;
  const helpText = help ? `${help.text}\n` : previous?.help;
  if (helpText !== undefined) file('.singularity.d/runscript.help', helpText, 0o644);
  if (input.recipeText !== undefined) file('.singularity.d/Singularity', input.recipeText, 0o644);

  const labels: Record<string, string> = nameTable(Object.entries({
    ...(imageConfig?.labels ?? {}),
    ...(previous?.labels ?? {}),
    'org.label-schema.schema-version': '1.0',
    'org.label-schema.build-date': input.buildDate,
    'org.label-schema.build-arch': input.arch,
    'org.label-schema.usage.orchestrator.version': input.toolVersion,
    'org.opencontainers.image.created': input.buildDate,
  }));
  if (stage && input.recipeText !== undefined) {
    labels['org.label-schema.usage.singularity.deffile'] = 'Singularity';
    Object.assign(labels, deffileLabels(stage, input.source));
  }
  if (helpText !== undefined) {
    labels['org.label-schema.usage'] = '/.singularity.d/runscript.help';
    labels['org.label-schema.usage.singularity.runscript.help'] = '/.singularity.d/runscript.help';
  }
  Object.assign(labels, labelsFromStage(stage));
  file('.singularity.d/labels.json', json(labels), 0o644);

  link('singularity', '.singularity.d/runscript');
  link('environment', '.singularity.d/env/90-environment.sh');
  link('.run', '.singularity.d/actions/run');
  link('.exec', '.singularity.d/actions/exec');
  link('.shell', '.singularity.d/actions/shell');
  link('.test', '.singularity.d/actions/test');

  if (stage) {
    for (const app of apps) {
      const base = `scif/apps/${app}`;
      for (const d of ['scif', 'scif/apps', base, `${base}/bin`, `${base}/lib`, `${base}/scif`, `${base}/scif/env`, 'scif/data', `scif/data/${app}`, `scif/data/${app}/input`, `scif/data/${app}/output`]) dir(d);
      const run = scriptOf(stage, 'apprun', app);
      if (run) file(`${base}/scif/runscript`, scriptFile(run));
      const env = scriptOf(stage, 'appenv', app);
      file(`${base}/scif/env/01-base.sh`, appBaseEnv(app));
      if (env) file(`${base}/scif/env/90-environment.sh`, `${ENV_90_HEAD}${env.text}\n`);
      const appTest = scriptOf(stage, 'apptest', app);
      if (appTest) file(`${base}/scif/test`, scriptFile(appTest));
      const start = scriptOf(stage, 'appstart', app);
      if (start) file(`${base}/scif/startscript`, scriptFile(start));
      const appHelp = scriptOf(stage, 'apphelp', app);
      if (appHelp) file(`${base}/scif/runscript.help`, `${appHelp.text}\n`, 0o644);
      // Every app has labels.json, with SCIF_APP_NAME first set (Apptainer's writeLabels).
      file(`${base}/scif/labels.json`, json({ SCIF_APP_NAME: app, ...labelsFromStage(stage, app) }), 0o644);
    }
  }
  return entries;
}

const DEFFILE = 'org.label-schema.usage.singularity.deffile';

/**
 * The provenance labels of a recipe build: `deffile.KEY` for each header field, as Singularity
 * writes them; when another source took the header's place, `deffile.bootstrap` and
 * `deffile.from` name the source used and the header's fields move to `deffile.header.KEY` (unless
 * that source is the header's own).
 */
function deffileLabels(stage: Stage, source: MetadataInput['source']): Record<string, string> {
  const out: Record<string, string> = {};
  // A `from:` that says what the header says changes nothing: the labels are the header's.
  const same = source && stage.header.get('bootstrap')?.value.toLowerCase() === source.bootstrap && stage.header.get('from')?.value === source.from;
  if (!source || same) {
    for (const [key, field] of stage.header) out[`${DEFFILE}.${key}`] = field.value;
    return out;
  }
  for (const [key, field] of stage.header) out[`${DEFFILE}.header.${key}`] = field.value;
  out[`${DEFFILE}.bootstrap`] = source.bootstrap;
  out[`${DEFFILE}.from`] = source.from;
  return out;
}

/** Mount points every image needs, created when missing (never overwriting the source's). */
export const ROOT_SKELETON: readonly TreeEntry[] = [
  ...['dev', 'proc', 'sys', 'tmp', 'var', 'var/tmp', 'home', 'root', 'etc'].map(
    (path): TreeEntry => ({ type: 'dir', path, mode: path === 'tmp' || path === 'var/tmp' ? 0o1777 : path === 'root' ? 0o700 : 0o755 }),
  ),
  { type: 'file', path: 'etc/hosts', mode: 0o644, content: '' },
  { type: 'file', path: 'etc/resolv.conf', mode: 0o644, content: '' },
];
