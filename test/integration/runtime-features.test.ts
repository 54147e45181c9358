import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestImages, makeBusyboxTree, type TestImages } from '../helpers/busybox-image.js';
import { BIN, runCli } from '../helpers/cli.js';
import { readableInstall } from '../helpers/readable-install.js';

let work: string;
let images: TestImages;
let noActions: string;
let userBin: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orchestrator-features-'));
  chmodSync(work, 0o755);
  images = buildTestImages(work);
  userBin = readableInstall(join(work, 'install'));
  noActions = join(work, 'no-actions');
  makeBusyboxTree(noActions, { actions: false });
  writeFileSync(join(noActions, 'bin/custom-shell'), '#!/bin/sh\necho "custom shell: $*"\n');
  chmodSync(join(noActions, 'bin/custom-shell'), 0o755);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cli = (argv: string[], env: Record<string, string> = {}, input?: string): ReturnType<typeof runCli> =>
  runCli(argv, { cwd: work, env: { ...process.env, ...env }, ...(input !== undefined ? { input } : {}) });

describe('actions', () => {
  it('an image without action scripts gets the built-in ones: env files in order, runscript, test', async () => {
    const e = await cli(['exec', noActions, 'sh', '-c', 'echo "$ORDER|$FROM_ENV_FILE|${VIA_ACTIONS:-none}"']);
    expect(e.stdout).toBe('1090|yes|none\n');
    const r = await cli(['run', noActions, 'x', 'y']);
    expect(r.stdout).toBe('runscript: 2 args: x y\n');
    const t = await cli(['test', noActions]);
    expect([t.stdout, t.code]).toEqual(['test script ran\n', 3]);
  });

  it('shell honours SINGULARITY_SHELL, else runs /bin/sh (no bash in the image)', async () => {
    const custom = await cli(['shell', noActions, 'a'], { SINGULARITY_SHELL: '/bin/custom-shell' });
    expect(custom.stdout).toBe('custom shell: a\n');
    const sh = await cli(['shell', noActions], {}, 'echo "in $SHELL"; exit 4\n');
    expect([sh.stdout, sh.code]).toEqual(['in /bin/sh\n', 4]);
    const withActions = await cli(['shell', images.squashfs], {}, 'echo "actions=$VIA_ACTIONS"\n');
    expect(withActions.stdout).toBe('actions=1\n');
  });
});

describe('options', () => {
  it('--pwd sets the working folder; by default it is the caller cwd', async () => {
    expect((await cli(['exec', '--pwd', '/etc', images.squashfs, 'pwd'])).stdout).toBe('/etc\n');
    expect((await cli(['exec', images.squashfs, 'pwd'])).stdout).toBe(`${work}\n`);
  });

  it('the session tmpfs does not show through the /tmp bind', async () => {
    const r = await cli(['exec', images.squashfs, 'sh', '-c', `ls -A ${join(tmpdir(), 'orchestrator-session-0')} | wc -l`]);
    expect(r.stdout).toBe('0\n');
  });

  it('--home binds another folder as home', async () => {
    const h = join(work, 'alt-home');
    mkdirSync(h);
    writeFileSync(join(h, 'marker'), 'home!\n');
    const r = await cli(['exec', '--home', `${h}:/home/me`, images.squashfs, 'sh', '-c', 'echo $HOME; cat ~/marker']);
    expect(r.stdout).toBe('/home/me\nhome!\n');
  });

  it('--contain gives empty /tmp and a minimal /dev; --containall a new pid namespace and a clean environment', async () => {
    writeFileSync(join('/tmp', `orchestrator-contain-probe-${process.pid}`), 'x');
    try {
      const c = await cli(['exec', '--contain', images.squashfs, 'sh', '-c', 'ls -A /tmp | wc -l; ls /dev | grep -c "^null$"; pwd'], { HOME: '/root' });
      expect(c.stdout).toBe('0\n1\n/root\n');
      const all = await cli(['exec', '--containall', images.squashfs, 'sh', '-c', 'echo "$$ ${MY_VAR:-unset}"; cat /proc/1/comm'], { MY_VAR: 'x' });
      expect(all.stdout).toBe('2 unset\nstarter\n');
    } finally {
      rmSync(join('/tmp', `orchestrator-contain-probe-${process.pid}`), { force: true });
    }
  });

  it('/etc/passwd and /etc/group get a caller that is not root; /etc/hosts comes from the host', () => {
    const r = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, userBin, 'exec', images.sandbox, 'sh', '-c', 'cat /etc/passwd /etc/group; echo hosts'],
      { cwd: work, encoding: 'utf8', env: { ...process.env, HOME: '/nonexistent' } },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nroot:x:0:\nnogroup:x:65534:\nhosts\n');
    const hosts = spawnSync(process.execPath, [BIN, 'exec', images.squashfs, 'cat', '/etc/hosts'], { cwd: work, encoding: 'utf8' });
    expect(hosts.stdout).toBe(readFileSync('/etc/hosts', 'utf8'));
  });

  it('SIGTERM to the CLI reaches the container process', async () => {
    const child = spawn(process.execPath, [BIN, 'exec', images.squashfs, 'sh', '-c', 'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.1; done'], {
      cwd: work,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    await new Promise<void>((resolveReady) =>
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('ready')) resolveReady();
      }),
    );
    const code = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    child.kill('SIGTERM');
    expect(await code).toBe(42);
    expect(out).toBe('ready\ngot TERM\n');
  });
});

describe('inspect and run-help', () => {
  for (const which of ['sandbox', 'squashfsHeader', 'ext3Header'] as const) {
    it(`reads the metadata of a ${which}`, async () => {
      const image = images[which];
      const labels = await cli(['inspect', image]);
      expect(labels.stdout).toBe('org.label-schema.schema-version: 1.0\nMAINTAINER: tests\n');
      const json = await cli(['inspect', '--json', '--labels', '--runscript', '--deffile', '--helpfile', '--environment', '--test', image]);
      const parsed = JSON.parse(json.stdout) as { data: { attributes: Record<string, unknown> }; type: string };
      expect(parsed.type).toBe('container');
      expect(parsed.data.attributes).toEqual({
        labels: { 'org.label-schema.schema-version': '1.0', MAINTAINER: 'tests' },
        deffile: 'Bootstrap: scratch\n\n%runscript\n    echo "runscript: $# args: $*"\n',
        runscript: '#!/bin/sh\necho "runscript: $# args: $*"\nexit 0\n',
        test: '#!/bin/sh\necho "test script ran"\nexit 3\n',
        environment: {
          '/.singularity.d/env/01-base.sh': '#!/bin/sh\n',
          '/.singularity.d/env/10-docker2singularity.sh': '#!/bin/sh\nORDER="${ORDER:-}10"; export ORDER\n',
          '/.singularity.d/env/90-environment.sh': '#!/bin/sh\n# Custom environment shell code should follow\nORDER="${ORDER:-}90"; FROM_ENV_FILE=yes; export ORDER FROM_ENV_FILE\n',
        },
        helpfile: 'Usage: run IMAGE [ARGS...]\nPrints its arguments.\n',
      });
      const help = await cli(['run-help', image]);
      expect(help.stdout).toBe('Usage: run IMAGE [ARGS...]\nPrints its arguments.\n');
    });
  }

  it('shows null for missing parts', async () => {
    const bare = join(work, 'bare');
    mkdirSync(join(bare, 'bin'), { recursive: true });
    const r = await cli(['inspect', '--json', '--labels', '--runscript', '--environment', bare]);
    expect(JSON.parse(r.stdout)).toEqual({ data: { attributes: { labels: null, runscript: null, environment: null } }, type: 'container' });
    expect((await cli(['run-help', bare])).stdout).toBe('No help sections were defined for this image\n');
  });
});

describe('run-singularity', () => {
  it('./image.simg ARGS runs the runscript when bin/ is on PATH', () => {
    // What npm's bin link does for package.json "bin": {"run-singularity": "bin/run-singularity.js"}.
    const binDir = join(work, 'npm-bin');
    mkdirSync(binDir);
    symlinkSync(join(dirname(BIN), 'run-singularity.js'), join(binDir, 'run-singularity'));
    const r = spawnSync(images.squashfsHeader, ['one', 'two'], {
      cwd: work,
      encoding: 'utf8',
      env: { ...process.env, PATH: `${binDir}:${process.env['PATH'] ?? ''}` },
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('runscript: 2 args: one two\n');
    expect(r.status).toBe(0);
  });
});

describe('runContainer for build steps', () => {
  it('runs an argv as is in an overlay whose upper folder keeps the changes', async () => {
    const { runContainer } = await import('../../src/runtime/container-session.js');
    const upper = join(work, 'step-upper');
    const workdir = join(work, 'step-work');
    mkdirSync(upper);
    mkdirSync(workdir);
    const r = await runContainer({
      root: { kind: 'overlay', lowers: [images.sandbox], upper, work: workdir },
      action: 'raw',
      args: ['/bin/sh', '-ec', 'echo built > /made.txt; test -e /proc/self/status; test -c /dev/null; cat /etc/resolv.conf >/dev/null; test "$STEP_VAR $(pwd)" = "yes /"'],
      mode: 'ephemeral',
      defaultBinds: false,
      hostFiles: ['/etc/resolv.conf', '/etc/hosts'],
      cleanEnv: true,
      env: { STEP_VAR: 'yes', PATH: '/bin' },
      pwd: '/',
      hostEnv: process.env,
      cwd: work,
      cacheDir: join(work, 'cache'),
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    expect(r).toEqual({ ok: true, value: { exitCode: 0, interrupted: false } });
    expect(readFileSync(join(upper, 'made.txt'), 'utf8')).toBe('built\n');
    expect(existsSync(join(images.sandbox, 'made.txt'))).toBe(false);
  });

  it('an aborted signal stops the session: SIGTERM to its process group', async () => {
    const { runContainer } = await import('../../src/runtime/container-session.js');
    const controller = new AbortController();
    const pending = runContainer({
      root: { kind: 'image', image: { path: images.squashfsHeader, format: 'squashfs', offset: 31, header: true, size: 0 } },
      action: 'raw',
      args: ['/bin/sleep', '30'],
      mode: 'ephemeral',
      hostEnv: process.env,
      cwd: work,
      cacheDir: join(work, 'cache'),
      stdio: 'ignore',
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 300);
    expect(await pending).toEqual({ ok: true, value: { exitCode: 143, interrupted: true } });
  });
});
