import { describe, expect, it } from 'vitest';
import { parseEnvOption } from '../../src/cli/container-action.js';
import { containerEnvironment } from '../../src/runtime/container-session.js';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const extra = { home: '/home/me', container: '/images/app.simg' };
const host = {
  PATH: '/host/bin:/usr/bin',
  LD_LIBRARY_PATH: '/host/lib',
  HOME: '/home/me',
  TERM: 'xterm',
  LANG: 'en_US.UTF-8',
  http_proxy: 'http://proxy:3128',
  MY_VAR: 'mine',
  SINGULARITY_BINDPATH: '/data',
  APPTAINER_APPNAME: 'foo',
  SINGULARITYENV_FROM_PREFIX: 'yes',
  APPTAINERENV_HOME: '/elsewhere',
  SINGULARITYENV_PATH: '/prefixed/bin',
};

describe('containerEnvironment', () => {
  it("Apptainer's rules: no host PATH, LD_LIBRARY_PATH, HOME or SINGULARITY_/APPTAINER_ variables; SINGULARITYENV_PATH for 99-runtimevars.sh", () => {
    const env = containerEnvironment({ hostEnv: host }, extra);
    expect(env).toEqual({
      TERM: 'xterm',
      LANG: 'en_US.UTF-8',
      http_proxy: 'http://proxy:3128',
      MY_VAR: 'mine',
      FROM_PREFIX: 'yes',
      SING_USER_DEFINED_PATH: '/prefixed/bin',
      ORCHESTRATOR_USER_ENV: 'export FROM_PREFIX="yes"',
      PATH: DEFAULT_PATH,
      HOME: '/home/me',
      SINGULARITY_CONTAINER: '/images/app.simg',
      APPTAINER_CONTAINER: '/images/app.simg',
      SINGULARITY_NAME: 'app.simg',
      APPTAINER_NAME: 'app.simg',
    });
  });

  it('--cleanenv keeps TERM and the proxies and sets LANG=C', () => {
    const env = containerEnvironment({ hostEnv: host, cleanEnv: true }, extra);
    expect([env['TERM'], env['http_proxy'], env['LANG'], env['MY_VAR'], env['PATH']]).toEqual(['xterm', 'http://proxy:3128', 'C', undefined, DEFAULT_PATH]);
  });

  it('--env-file < SINGULARITYENV_ < --env; LD_LIBRARY_PATH may be set, HOME may not; --app sets the app name', () => {
    const env = containerEnvironment(
      { hostEnv: { SINGULARITYENV_A: 'host', SINGULARITYENV_B: 'host' }, envFile: { A: 'file', B: 'file', C: 'file' }, userEnv: { B: 'flag', LD_LIBRARY_PATH: '/opt/lib', HOME: '/x', APPEND_PATH: '/after' }, app: 'tool' },
      extra,
    );
    expect([env['A'], env['B'], env['C'], env['LD_LIBRARY_PATH'], env['HOME'], env['SING_USER_DEFINED_APPEND_PATH']]).toEqual(['host', 'flag', 'file', '/opt/lib', '/home/me', '/after']);
    expect([env['SINGULARITY_APPNAME'], env['APPTAINER_APPNAME']]).toEqual(['tool', 'tool']);
    // Applied again after the image's env files, quoted for "..." (a $NAME is expanded there, as in Apptainer).
    expect(env['ORCHESTRATOR_USER_ENV']).toBe('export A="host"\nexport B="flag"\nexport C="file"\nexport LD_LIBRARY_PATH="/opt/lib"');
    const odd = containerEnvironment({ hostEnv: {}, userEnv: { Q: 'a"b\\c`d$HOME' } }, extra);
    expect(odd['ORCHESTRATOR_USER_ENV']).toBe('export Q="a\\"b\\\\c\\`d$HOME"');
  });

  it("--legacy-env: Singularity 2.4's rules pass the host PATH and LD_LIBRARY_PATH, and SINGULARITYENV_PATH sets PATH", () => {
    const env = containerEnvironment({ hostEnv: { ...host, SINGULARITYENV_PATH: undefined }, legacyEnv: true }, extra);
    expect([env['PATH'], env['LD_LIBRARY_PATH'], env['SINGULARITY_BINDPATH']]).toEqual(['/host/bin:/usr/bin', '/host/lib', '/data']);
    expect(containerEnvironment({ hostEnv: { SINGULARITYENV_PATH: '/p' }, legacyEnv: true }, extra)['PATH']).toBe('/p');
    expect(containerEnvironment({ hostEnv: {}, legacyEnv: true }, extra)['PATH']).toBe(DEFAULT_PATH);
  });
});

describe('parseEnvOption', () => {
  it('reads comma lists; a piece without = belongs to the value before it', () => {
    expect(parseEnvOption(['A=1,B=2', 'C=x,y,z', 'D='])).toEqual({ ok: true, value: { A: '1', B: '2', C: 'x,y,z', D: '' } });
  });

  it('refuses what is not KEY=VALUE', () => {
    for (const bad of ['=1', 'noequals', '1A=2', 'A-B=1']) expect(parseEnvOption([bad]).ok, bad).toBe(false);
  });
});
