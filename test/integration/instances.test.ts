import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEADER, makeBusyboxTree } from '../helpers/busybox-image.js';
import { runCli } from '../helpers/cli.js';
import { mountProbe } from '../helpers/mount-probe.js';
import { readableInstall } from '../helpers/readable-install.js';
import { freePort } from '../helpers/registry.js';
import { createTestUser, type TestUser } from '../helpers/test-user.js';

/**
 * Instances (issue 21): an image whose startscript serves HTTP on 127.0.0.1 (busybox httpd), in
 * each format; a client inside `exec instance://NAME` reaches it.
 */
let work: string;
let xdg: string;
const images: Record<'sandbox' | 'squashfs' | 'ext3', string> = { sandbox: '', squashfs: '', ext3: '' };
const { mountinfo, loops } = mountProbe(() => work);
let mountsBefore: string;
let loopsBefore: string;

const cli = (argv: string[], env: Record<string, string> = {}): ReturnType<typeof runCli> =>
  runCli(argv, { cwd: work, env: { ...process.env, XDG_RUNTIME_DIR: xdg, ...env } });

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orchestrator-instances-'));
  chmodSync(work, 0o755);
  xdg = join(work, 'xdg');
  mkdirSync(xdg, { mode: 0o700 });
  const tree = join(work, 'sandbox');
  makeBusyboxTree(tree);
  for (const a of ['httpd', 'wget', 'ps']) symlinkSync('busybox', join(tree, 'bin', a));
  mkdirSync(join(tree, 'srv'));
  writeFileSync(join(tree, 'srv/index.html'), 'hello from the instance\n');
  writeFileSync(join(tree, '.singularity.d/startscript'), '#!/bin/sh\necho "serving on $1"\nexec httpd -f -p "127.0.0.1:$1" -h /srv\n');
  chmodSync(join(tree, '.singularity.d/startscript'), 0o755);
  // The busybox tree's hand-written action scripts have no `start`: the launcher's runs the startscript.
  images.sandbox = tree;
  const sqfs = join(work, 'image.sqfs');
  execFileSync('mksquashfs', [tree, sqfs, '-noappend', '-quiet', '-no-progress'], { stdio: 'ignore' });
  images.squashfs = join(work, 'image.simg');
  writeFileSync(images.squashfs, Buffer.concat([Buffer.from(HEADER), readFileSync(sqfs)]));
  images.ext3 = join(work, 'image.img');
  execFileSync('mkfs.ext3', ['-q', '-F', '-d', tree, images.ext3, '16M'], { stdio: 'ignore' });
  mountsBefore = mountinfo();
  loopsBefore = loops();
});
afterAll(async () => {
  await cli(['instance', 'stop', '--all', '--timeout', '1']);
  rmSync(work, { recursive: true, force: true });
});

/** Host pids of the processes in a pid namespace (`pid:[N]`). */
function inNamespace(ns: string): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        return readlinkSync(`/proc/${n}/ns/pid`) === ns;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The pid namespace of an instance's processes, through its record's starter. */
function namespaceOf(pid: number): string {
  const init = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0]!;
  return readlinkSync(`/proc/${init}/ns/pid`);
}

async function listJson(env: Record<string, string> = {}): Promise<Array<{ instance: string; pid: number; img: string }>> {
  const r = await cli(['instance', 'list', '--json'], env);
  return (JSON.parse(r.stdout) as { instances: Array<{ instance: string; pid: number; img: string }> }).instances;
}

describe('instances', () => {
  for (const format of ['sandbox', 'squashfs', 'ext3'] as const) {
    it(`start, join, list and stop (${format}): every process ends, no mount or loop device is left`, async () => {
      const port = await freePort();
      const name = `web-${format}`;
      const started = await cli(['instance', 'start', images[format], name, String(port)]);
      expect(started.code, started.stderr).toBe(0);
      const listed = await listJson();
      expect(listed.map((i) => [i.instance, i.img])).toEqual([[name, images[format]]]);
      const pid = listed[0]!.pid;
      const client = await cli(['exec', `instance://${name}`, 'wget', '-qO-', `http://127.0.0.1:${port}/`]);
      expect([client.stdout, client.code]).toEqual(['hello from the instance\n', 0]);
      // Inside: process 1 reaps, the startscript (exec'd into httpd) is process 2.
      const ps = await cli(['exec', `instance://${name}`, 'sh', '-c', 'cat /proc/2/comm; echo "$SINGULARITY_CONTAINER"']);
      expect(ps.stdout).toBe(`httpd\n${images[format]}\n`);
      const text = await cli(['instance', 'list']);
      expect(text.stdout).toMatch(new RegExp(`^INSTANCE NAME +PID +IMAGE\\n${name} +${pid} +${images[format].replace(/[.]/g, '\\.')}\\n$`));
      const ns = namespaceOf(pid);
      const members = inNamespace(ns);
      expect(members.length).toBeGreaterThanOrEqual(2);
      if (format !== 'sandbox') expect(loops()).toContain(images[format]);
      const stopped = await cli(['instance', 'stop', name]);
      expect([stopped.code, stopped.stderr]).toEqual([0, `instance ${name} stopped\n`]);
      expect(inNamespace(ns)).toEqual([]);
      expect(existsSync(`/proc/${pid}`)).toBe(false);
      expect(await listJson()).toEqual([]);
      expect(readdirSync(join(xdg, 'orchestrator-instances')).filter((f) => f.endsWith('.json'))).toEqual([]);
      expect(readFileSync(join(xdg, 'orchestrator-instances', `${name}.out`), 'utf8')).toBe(`serving on ${port}\n`);
      // The kernel frees a loop device once the namespace's last mount is gone.
      for (let i = 0; i < 100 && loops() !== loopsBefore; i++) await new Promise((r) => setTimeout(r, 100));
      expect(loops()).toBe(loopsBefore);
      expect(mountinfo()).toBe(mountsBefore);
    });
  }

  it('a killed starter ends the instance, and the next list sweeps its record', async () => {
    const port = await freePort();
    expect((await cli(['instance', 'start', images.sandbox, 'doomed', String(port)])).code).toBe(0);
    const [record] = await listJson();
    const ns = namespaceOf(record!.pid);
    process.kill(record!.pid, 'SIGKILL');
    for (let i = 0; i < 100 && existsSync(`/proc/${record!.pid}`); i++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(join(xdg, 'orchestrator-instances', 'doomed.json'))).toBe(true);
    expect(await listJson()).toEqual([]);
    expect(existsSync(join(xdg, 'orchestrator-instances', 'doomed.json'))).toBe(false);
    for (let i = 0; i < 100 && inNamespace(ns).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(inNamespace(ns)).toEqual([]);
  });

  it('stop --signal and --timeout: a startscript that ignores the signal is killed after the timeout', async () => {
    const stubborn = join(work, 'stubborn');
    makeBusyboxTree(stubborn);
    writeFileSync(join(stubborn, '.singularity.d/startscript'), '#!/bin/sh\ntrap "" TERM INT\nwhile :; do sleep 1; done\n');
    chmodSync(join(stubborn, '.singularity.d/startscript'), 0o755);
    expect((await cli(['instance', 'start', stubborn, 'stubborn'])).code).toBe(0);
    const [record] = await listJson();
    const ns = namespaceOf(record!.pid);
    const r = await cli(['instance', 'stop', '--signal', 'INT', '--timeout', '1', 'stubborn']);
    expect([r.code, r.stderr]).toEqual([0, 'instance stubborn stopped (killed after 1 s)\n']);
    expect(inNamespace(ns)).toEqual([]);
  });

  it('--signal INT reaches a startscript that stops on it', async () => {
    const polite = join(work, 'polite');
    makeBusyboxTree(polite);
    writeFileSync(join(polite, '.singularity.d/startscript'), '#!/bin/sh\ntrap "echo got INT; exit 0" INT\necho ready\nwhile :; do sleep 1; done\n');
    chmodSync(join(polite, '.singularity.d/startscript'), 0o755);
    expect((await cli(['instance', 'start', polite, 'polite'])).code).toBe(0);
    const r = await cli(['instance', 'stop', '--signal', 'SIGINT', '--timeout', '30', 'polite']);
    expect([r.code, r.stderr]).toEqual([0, 'instance polite stopped\n']);
    expect(readFileSync(join(xdg, 'orchestrator-instances', 'polite.out'), 'utf8')).toBe('ready\ngot INT\n');
  });

  it('bad input: a taken name, an unknown instance, a bad name, stop without a name', async () => {
    const port = await freePort();
    expect((await cli(['instance', 'start', images.sandbox, 'once', String(port)])).code).toBe(0);
    const [record] = await listJson();
    const again = await cli(['instance', 'start', images.sandbox, 'once']);
    expect([again.code, again.stderr]).toEqual([2, `error: an instance named 'once' is already running (pid ${record!.pid}, ${images.sandbox})\n  hint: stop it first: orchestrator instance stop once\n`]);
    const unknown = await cli(['exec', 'instance://onse', 'true']);
    expect([unknown.code, unknown.stderr]).toEqual([2, "error: no instance named 'onse' is running\n  hint: running: once\n"]);
    const stopUnknown = await cli(['instance', 'stop', 'onse']);
    expect([stopUnknown.code, stopUnknown.stderr]).toEqual([2, "error: no instance named 'onse' is running\n  hint: did you mean 'once'?\n"]);
    const badName = await cli(['instance', 'start', images.sandbox, '../x']);
    expect([badName.code, badName.stderr]).toEqual([2, "error: '../x' is not an instance name\n  hint: use letters, digits, ., _ and -, starting with a letter or digit\n"]);
    const badBind = await cli(['instance', 'start', '-B', join(work, 'missing'), images.sandbox, 'nobind']);
    expect([badBind.code, badBind.stderr]).toEqual([2, `error: bind source ${join(work, 'missing')} does not exist\n  hint: create it, or fix the path in -B ${join(work, 'missing')}\n`]);
    expect(existsSync(join(xdg, 'orchestrator-instances', 'nobind.json'))).toBe(false);
    const neither = await cli(['instance', 'stop']);
    expect([neither.code, neither.stderr]).toEqual([2, "error: 'instance stop' needs a NAME or --all\n  hint: orchestrator instance stop NAME|--all\n"]);
    expect((await cli(['instance', 'stop', '--all'])).code).toBe(0);
    expect(await listJson()).toEqual([]);
  });
});

describe('instances of a user that is not root', () => {
  let user: TestUser;
  let userBin: string;
  let userXdg: string;
  beforeAll(() => {
    user = createTestUser('orchinst');
    userBin = readableInstall(join(work, 'install'));
    userXdg = join(work, 'user-xdg');
    mkdirSync(userXdg, { mode: 0o700 });
    chownSync(userXdg, user.uid, user.gid);
  });
  afterAll(() => {
    spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', process.execPath, userBin, 'instance', 'stop', '--all', '--timeout', '1'], {
      cwd: work,
      env: { ...process.env, HOME: '/nonexistent', XDG_RUNTIME_DIR: userXdg },
    });
    user.remove();
  });

  const asUser = (argv: string[]) =>
    spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', process.execPath, userBin, ...argv], {
      cwd: work,
      encoding: 'utf8',
      env: { ...process.env, HOME: '/nonexistent', XDG_RUNTIME_DIR: userXdg, ORCHESTRATOR_CACHE: join(userXdg, 'cache') },
    });

  it('starts its own instance in a user namespace, joins it, and stops it; root does not see it', async () => {
    const port = await freePort();
    const started = asUser(['instance', 'start', images.squashfs, 'mine', String(port)]);
    expect(started.status, started.stderr).toBe(0);
    const client = asUser(['exec', 'instance://mine', 'sh', '-c', `id -u; wget -qO- http://127.0.0.1:${port}/`]);
    expect([client.stdout, client.status]).toEqual([`${user.uid}\nhello from the instance\n`, 0]);
    expect(await listJson()).toEqual([]);
    const list = JSON.parse(asUser(['instance', 'list', '--json']).stdout) as { instances: Array<{ instance: string; pid: number }> };
    expect(list.instances.map((i) => i.instance)).toEqual(['mine']);
    const ns = namespaceOf(list.instances[0]!.pid);
    const stopped = asUser(['instance', 'stop', 'mine']);
    expect([stopped.status, stopped.stderr]).toEqual([0, 'instance mine stopped\n']);
    expect(inNamespace(ns)).toEqual([]);
  });
});
