import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountProbe } from '../helpers/mount-probe.js';
import { buildTestImages, digestOf, type TestImages } from '../helpers/busybox-image.js';
import { runCli } from '../helpers/cli.js';
import { readableInstall } from '../helpers/readable-install.js';

let work: string;
let images: TestImages;
let cache: string;
let userBin: string;
let mountsBefore: string;
let loopsBefore: string;

// Only what concerns this file's images: other test files may run containers at the same time.
const { mountinfo, loops } = mountProbe(() => work);

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orchestrator-runtime-'));
  chmodSync(work, 0o755);
  images = buildTestImages(work);
  cache = join(work, 'cache');
  userBin = readableInstall(join(work, 'install'));
  mountsBefore = mountinfo();
  loopsBefore = loops();
});

afterAll(() => {
  expect(mountinfo()).toBe(mountsBefore);
  expect(loops()).toBe(loopsBefore);
  rmSync(work, { recursive: true, force: true });
});

function orchestrator(argv: string[], env: Record<string, string> = {}): ReturnType<typeof runCli> {
  return runCli(argv, { cwd: work, env: { ...process.env, ORCHESTRATOR_CACHE: cache, ...env } });
}

const FORMATS = [
  ['sandbox', (i: TestImages) => i.sandbox],
  ['squashfs', (i: TestImages) => i.squashfs],
  ['squashfs with header', (i: TestImages) => i.squashfsHeader],
  ['ext3', (i: TestImages) => i.ext3],
  ['ext3 with header', (i: TestImages) => i.ext3Header],
] as const;

describe.each(FORMATS)('%s', (name, pick) => {
  const image = (): string => pick(images);

  it('reads files of the image', async () => {
    const r = await orchestrator(['exec', image(), 'cat', '/etc/os-release']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('NAME="Busybox Test"\nID=busybox-test\n');
    expect(r.code).toBe(0);
  });

  it("passes the command's exit status through", async () => {
    expect((await orchestrator(['exec', image(), 'sh', '-c', 'exit 7'])).code).toBe(7);
    expect((await orchestrator(['exec', image(), 'sh', '-c', 'kill -TERM $$'])).code).toBe(143);
  });

  it('lets root write by default, and the write is gone on the next run; the image is unchanged', async () => {
    const before = digestOf(image());
    const w = await orchestrator(['exec', image(), 'sh', '-c', 'echo hi > /hello.txt && cat /hello.txt']);
    expect(w.stdout).toBe('hi\n');
    expect(w.code).toBe(0);
    const again = await orchestrator(['exec', image(), 'ls', '/hello.txt']);
    expect(again.stderr).toBe("ls: /hello.txt: No such file or directory\n");
    expect(again.code).toBe(1);
    const tmpfs = await orchestrator(['exec', '--writable-tmpfs', image(), 'touch', '/x']);
    expect(tmpfs.code).toBe(0);
    expect(digestOf(image())).toBe(before);
  });

  it('--read-only makes writes fail with EROFS', async () => {
    const before = digestOf(image());
    const r = await orchestrator(['exec', '--read-only', image(), 'touch', '/hello.txt']);
    expect(r.stderr).toBe('touch: /hello.txt: Read-only file system\n');
    expect(r.code).toBe(1);
    expect(digestOf(image())).toBe(before);
  });

  if (name.startsWith('squashfs')) {
    it('--writable refuses a squashfs image and points at build --sandbox', async () => {
      const r = await orchestrator(['exec', '--writable', image(), 'touch', '/hello.txt']);
      expect(r.stderr).toContain(`error: ${image()}: a squashfs image is immutable; --writable works on sandboxes and ext3 images`);
      expect(r.stderr).toContain(`hint: make a writable copy: 'orchestrator build --sandbox DIR ${image()}'`);
      expect(r.code).toBe(2);
    });
  } else {
    it('--writable persists changes', async () => {
      const copy = join(work, `writable-${name.replace(/ /g, '-')}`);
      cpSync(image(), copy, { recursive: true });
      const w = await orchestrator(['exec', '--writable', copy, 'sh', '-c', 'echo kept > /hello.txt']);
      expect(w.stderr).toBe('');
      expect(w.code).toBe(0);
      const r = await orchestrator(['exec', copy, 'cat', '/hello.txt']);
      expect(r.stdout).toBe('kept\n');
      rmSync(copy, { recursive: true, force: true });
    });
  }

  it('binds host folders read-only and read-write', async () => {
    const data = mkdtempSync(join(work, 'data-'));
    writeFileSync(join(data, 'in.txt'), 'from host\n');
    const ro = await orchestrator(['exec', '-B', `${data}:/data:ro`, image(), 'sh', '-c', 'cat /data/in.txt; touch /data/new']);
    expect(ro.stdout).toBe('from host\n');
    expect(ro.stderr).toBe('touch: /data/new: Read-only file system\n');
    expect(ro.code).toBe(1);
    const rw = await orchestrator(['exec', '--bind', `${data}:/data:rw,${data}:/data2`, image(), 'sh', '-c', 'echo out > /data/out.txt && cat /data2/in.txt']);
    expect(rw.stdout).toBe('from host\n');
    expect(rw.code).toBe(0);
    expect(readFileSync(join(data, 'out.txt'), 'utf8')).toBe('out\n');
    const envBind = await orchestrator(['exec', image(), 'cat', '/fromenv/in.txt'], { SINGULARITY_BINDPATH: `${data}:/fromenv` });
    expect(envBind.stdout).toBe('from host\n');
  });

  it('passes the environment, SINGULARITYENV_/APPTAINERENV_, env files in order; --cleanenv', async () => {
    const script = 'echo "$MY_VAR|$GREETING|$OTHER|$ORDER|$FROM_ENV_FILE|$VIA_ACTIONS"';
    const env = { MY_VAR: 'host', SINGULARITYENV_GREETING: 'hi', APPTAINERENV_OTHER: 'there' };
    const r = await orchestrator(['exec', image(), 'sh', '-c', script], env);
    expect(r.stdout).toBe('host|hi|there|1090|yes|1\n');
    const clean = await orchestrator(['exec', '--cleanenv', image(), 'sh', '-c', script], env);
    expect(clean.stdout).toBe('|hi|there|1090|yes|1\n');
  });

  it('run gives the runscript its arguments; test runs the test script', async () => {
    const r = await orchestrator(['run', image(), 'a', 'b c']);
    expect(r.stdout).toBe('runscript: 2 args: a b c\n');
    expect(r.code).toBe(0);
    const t = await orchestrator(['test', image()]);
    expect(t.stdout).toBe('test script ran\n');
    expect(t.code).toBe(3);
  });

  it('a user that is not root keeps their uid and cannot write what the image does not let them', async () => {
    const before = digestOf(image());
    const userCache = join(work, 'cache-65534');
    if (!existsSync(userCache)) {
      execFileSync('mkdir', ['-p', userCache]);
      execFileSync('chown', ['65534:65534', userCache]);
    }
    const out = execFileSync(
      'sh',
      ['-c', `setpriv --reuid=65534 --regid=65534 --clear-groups node "$2" exec "$1" sh -c 'id -u; touch /hello.txt; cat /root-only.txt; echo rc=$?' 2>&1`, 'sh', image(), userBin],
      { cwd: work, encoding: 'utf8', env: { ...process.env, HOME: '/nonexistent', ORCHESTRATOR_CACHE: userCache } },
    );
    expect(out).toBe('65534\ntouch: /hello.txt: Permission denied\ncat: can\'t open \'/root-only.txt\': Permission denied\nrc=1\n');
    expect(digestOf(image())).toBe(before);
  });
});
