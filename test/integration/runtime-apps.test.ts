import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { BIN, runCli, runCliInProcess } from '../helpers/cli.js';

/** A SCIF recipe with two apps (issue 21), an %environment only bash reads, over a busybox base with the host's bash. */
const RECIPE = `Bootstrap: localimage
From: base

%environment
    declare -a WORDS=(zero one two)
    if [[ -n "\${WORDS[2]}" ]]; then export BASHY="\${WORDS[1]}-\${#WORDS[@]}"; fi

%runscript
    echo "main runscript: $*"

%apprun foo
    echo "foo runs: $SCIF_APPNAME $WHO $*"
%appenv foo
    export WHO=foo-env
%applabels foo
    Flavor foo-flavor
%apphelp foo
    Help for foo.
%apptest foo
    echo "foo test in $SCIF_APPOUTPUT"
    exit 5

%apprun bar
    echo "bar runs: $SCIF_APPNAME $WHO $*"
%appenv bar
    export WHO=bar-env
%applabels bar
    Flavor bar-flavor
%apphelp bar
    Help for bar.
%apptest bar
    echo "bar test in $SCIF_APPINPUT"
    exit 6
`;

let work: string;
let image: string;

/** The host's bash and the libraries it loads, copied into a tree. */
function addBash(tree: string): void {
  const libs = execFileSync('ldd', ['/bin/bash'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /(\/\S+) \(0x/.exec(l)?.[1])
    .filter((p): p is string => p !== undefined);
  for (const p of ['/bin/bash', ...libs]) {
    mkdirSync(join(tree, dirname(p)), { recursive: true });
    copyFileSync(p, join(tree, p));
    chmodSync(join(tree, p), 0o755);
  }
}

const cli = (argv: string[], env: Record<string, string> = {}): ReturnType<typeof runCli> =>
  runCli(argv, { cwd: work, env: { ...process.env, ORCHESTRATOR_CACHE: join(work, 'cache'), ...env } });

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'orchestrator-apps-'));
  chmodSync(work, 0o755);
  makeBusyboxTree(join(work, 'base'), { actions: false });
  addBash(join(work, 'base'));
  writeFileSync(join(work, 'apps.def'), RECIPE);
  image = join(work, 'apps.simg');
  const built = await cli(['build', image, 'apps.def']);
  expect(built.code, built.stderr).toBe(0);
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('SCIF apps', () => {
  it('run --app runs that app with its own environment; without --app the main runscript', async () => {
    expect((await cli(['run', '--app', 'foo', image, 'x'])).stdout).toBe('foo runs: foo foo-env x\n');
    expect((await cli(['run', '--app', 'bar', image])).stdout).toBe('bar runs: bar bar-env \n');
    expect((await cli(['run', image, 'y'])).stdout).toBe('main runscript: y\n');
  });

  it('exec --app sets the SCIF variables and puts the app first on PATH', async () => {
    const r = await cli(['exec', '--app', 'foo', image, 'sh', '-c', 'echo "$SCIF_APPNAME|$SCIF_APPROOT|$SCIF_APPMETA|$SCIF_DATA|$SCIF_APPDATA|$SCIF_APPINPUT|$SCIF_APPOUTPUT|$SCIF_APPS|$SINGULARITY_APPNAME|$WHO"; echo "$PATH" | cut -d: -f1-2; echo "$SCIF_APPRUN_bar|$SCIF_APPLABELS_bar"']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      'foo|/scif/apps/foo|/scif/apps/foo/scif|/scif/data|/scif/data/foo|/scif/data/foo/input|/scif/data/foo/output|/scif/apps|foo|foo-env\n' +
        '/scif/apps/foo/bin:/scif/apps/foo\n' +
        '/scif/apps/bar/scif/runscript|/scif/apps/bar/scif/labels.json\n',
    );
    const none = await cli(['exec', image, 'sh', '-c', 'echo "${SCIF_APPNAME:-none}|${WHO:-none}"']);
    expect(none.stdout).toBe('none|none\n');
  });

  it('the host SINGULARITY_APPNAME is not forwarded (only --app chooses)', async () => {
    const r = await cli(['run', image], { SINGULARITY_APPNAME: 'foo', APPTAINER_APPNAME: 'foo' });
    expect(r.stdout).toBe('main runscript: \n');
  });

  it("test --app runs that app's test", async () => {
    const foo = await cli(['test', '--app', 'foo', image]);
    expect([foo.stdout, foo.code]).toEqual(['foo test in /scif/data/foo/output\n', 5]);
    const bar = await cli(['test', '--app', 'bar', image]);
    expect([bar.stdout, bar.code]).toEqual(['bar test in /scif/data/bar/input\n', 6]);
  });

  it('run-help --app and inspect --app --labels give the app’s own; inspect --list-apps lists them', async () => {
    expect((await cli(['run-help', '--app', 'foo', image])).stdout).toBe('    Help for foo.\n');
    expect((await cli(['run-help', '--app', 'bar', image])).stdout).toBe('    Help for bar.\n');
    expect((await cli(['inspect', '--app', 'bar', '--labels', image])).stdout).toBe('Flavor: bar-flavor\nSCIF_APP_NAME: bar\n');
    const json = JSON.parse((await cli(['inspect', '--json', '--app', 'foo', '--runscript', '--labels', image])).stdout) as { data: { attributes: { labels: unknown; runscript: string } } };
    expect(json.data.attributes).toEqual({ labels: { Flavor: 'foo-flavor', SCIF_APP_NAME: 'foo' }, runscript: '#!/bin/sh\n\n    echo "foo runs: $SCIF_APPNAME $WHO $*"\n' });
    expect((await cli(['inspect', '--list-apps', image])).stdout).toBe('foo\nbar\n');
  });

  it('an unknown app is one error with a did-you-mean and the list, for every command', async () => {
    for (const argv of [['run', '--app', 'fooo', image], ['exec', '--app', 'fooo', image, 'true'], ['inspect', '--app', 'fooo', image], ['run-help', '--app', 'fooo', image]]) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`error: ${image}: no SCIF app 'fooo'\n  hint: did you mean 'foo'? (its apps: foo, bar)\n`);
    }
    const far = await cli(['run', '--app', 'zzz', image]);
    expect(far.stderr).toBe(`error: ${image}: no SCIF app 'zzz'\n  hint: its apps: foo, bar; 'orchestrator inspect --list-apps ${image}' lists them\n`);
  });
});

describe('environment', () => {
  it("the host's PATH stays outside by default; --legacy-env (Singularity 2.4) passes it", async () => {
    const hostPath = `/host/only:${process.env['PATH'] ?? '/usr/bin:/bin'}`;
    const r = await cli(['exec', image, 'sh', '-c', 'echo "$PATH"'], { PATH: hostPath, LD_LIBRARY_PATH: '/host/lib' });
    expect(r.stdout).toBe('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n');
    const lib = await cli(['exec', image, 'sh', '-c', 'echo "$LD_LIBRARY_PATH"'], { LD_LIBRARY_PATH: '/host/lib' });
    expect(lib.stdout).toBe('/.singularity.d/libs\n');
    const legacy = await cli(['exec', '--legacy-env', image, 'sh', '-c', 'echo "$PATH"'], { PATH: hostPath });
    expect(legacy.stdout).toBe(`${hostPath}\n`);
  });

  it('%environment with bash-only constructs works (env files are read by bash)', async () => {
    expect((await cli(['exec', image, 'sh', '-c', 'echo "$BASHY"'])).stdout).toBe('one-3\n');
  });

  it('--env and --env-file set variables; SINGULARITYENV_PATH and --env PATH replace PATH after the env files', async () => {
    writeFileSync(join(work, 'vars.env'), 'A=from-file\nB="two words"\nC=${A}-c\nARR=(x y); D=${ARR[1]}\n');
    const r = await cli(['exec', '--env', 'A=from-flag,E=1,2', image, 'sh', '-c', 'echo "$A|$B|$C|$D|$E|$F"'], { SINGULARITYENV_F: 'from-host', APPTAINER_ENV_FILE: 'vars.env' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('from-flag|two words|from-file-c|y|1,2|from-host\n');
    // The flag through the installed command itself: its `#!/usr/bin/env -S node --` line keeps Node 20
    // from taking `--env-file FILE` as its own option (nodejs/node#54232).
    const flag = spawnSync(BIN, ['exec', '--env-file', 'vars.env', image, 'sh', '-c', 'echo "$B|$D"'], { cwd: work, env: { ...process.env, ORCHESTRATOR_CACHE: join(work, 'cache') }, encoding: 'utf8' });
    expect([flag.status, flag.stderr, flag.stdout]).toEqual([0, '', 'two words|y\n']);
    const p = await cli(['exec', '--env', 'PATH=/opt/x:/bin', image, 'sh', '-c', 'echo "$PATH"']);
    expect(p.stdout).toBe('/opt/x:/bin\n');
    const pre = await cli(['exec', image, 'sh', '-c', 'echo "$PATH"'], { SINGULARITYENV_PREPEND_PATH: '/pre' });
    expect(pre.stdout).toBe('/pre:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n');
  });

  it('--env and SINGULARITYENV_ win over %environment and %appenv; a $NAME in a value is expanded inside', async () => {
    const r = await cli(['exec', '--app', 'foo', '--env', 'BASHY=from-flag,WHO=flag-who,MINE=$SCIF_APPNAME-$HOME', image, 'sh', '-c', 'echo "$BASHY|$WHO|$MINE|${ORCHESTRATOR_USER_ENV:-gone}"'], { SINGULARITYENV_HOSTY: 'h' });
    expect(r.stdout).toBe(`from-flag|flag-who|foo-${process.env['HOME'] ?? ''}|gone\n`);
    const host = await cli(['exec', image, 'sh', '-c', 'echo "$BASHY"'], { BASHY: 'from-host' });
    expect(host.stdout).toBe('one-3\n');
  });

  it('a bad --env or --env-file is one error before the container starts', async () => {
    const bad = await cli(['exec', '--env', '1X=2', image, 'true']);
    expect([bad.code, bad.stderr]).toEqual([2, "error: --env: '1X=2' is not KEY=VALUE\n  hint: give --env NAME=VALUE, NAME of letters, digits and _\n"]);
    const missing = await runCliInProcess(['exec', '--env-file', 'nope.env', image, 'true'], { cwd: work });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^error: --env-file: cannot read .*nope\.env: ENOENT/);
    writeFileSync(join(work, 'bad.env'), 'A=(unclosed\n');
    const syntax = await runCliInProcess(['exec', '--env-file', 'bad.env', image, 'true'], { cwd: work });
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toBe(`error: --env-file ${join(work, 'bad.env')}: line 1: unexpected EOF while looking for matching \`)'\n  hint: the file is read by bash: fix the line it names\n`);
  });
});
