import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

/**
 * Failures never escape (issue 14): a full disk, a read-only output folder or a read-only cache
 * is the failure of the target it hits, with the errno, the path and the file system; the other
 * targets go on under --keep-going, and the run ends with run-done and its summary line.
 */
let rig: Rig;
let env: NodeJS.ProcessEnv;
const mounted: string[] = [];

const recipe = (post: string) => `%post\n    ${post}\n%runscript\n    echo hi\n`;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-fail-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache') };
  delete env['CI'];
});
afterEach(() => {
  for (const m of mounted.splice(0).reverse()) execFileSync('umount', [m]);
  rig.cleanup();
});

const mount = (...args: string[]) => {
  execFileSync('mount', args);
};
/** A read-only bind mount of `dir` on itself. */
function readOnly(dir: string): void {
  mount('--bind', dir, dir);
  mounted.push(dir);
  mount('-o', 'remount,bind,ro', dir);
}

type Event = Record<string, unknown> & { type: string; target?: string; error?: { reason: string; message: string; hint?: string } };
const json = async (args: string[]) => {
  const r = await rig.spawn(['up', '--progress', 'json', ...args], { env });
  return { ...r, events: r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Event) };
};
const failure = (events: Event[], target: string) => events.find((e) => e.type === 'target-failed' && e.target === target)?.error;

const TWO = (output: string) =>
  `version: 1\ntargets:\n  big:\n    from: ./rootfs\n    recipe: big.def\n    format: squashfs\n    output: ${output}\n  other:\n    from: ./rootfs\n    recipe: other.def\n    format: squashfs\n`;

describe('a target that hits the system', () => {
  it('ENOSPC: names the error and the file system, keeps the previous output; --keep-going builds the other target', async () => {
    mkdirSync(rig.path('small'));
    mount('-t', 'tmpfs', '-o', 'size=5m', 'tmpfs', rig.path('small'));
    mounted.push(rig.path('small'));
    rig.write({ 'orchestrator.yaml': TWO('small/big.simg'), 'big.def': recipe('echo v1 > /v'), 'other.def': recipe('echo other > /o') });
    expect((await json(['big'])).code).toBe(0);
    const before = readFileSync(rig.path('small/big.simg'));
    rig.write({ 'big.def': recipe('dd if=/dev/urandom of=/big bs=1M count=8 2>/dev/null') });
    const r = await json(['--keep-going']);
    expect(r.code).toBe(1);
    const e = failure(r.events, 'big')!;
    expect(e.message).toContain(`ENOSPC: the file system at ${rig.path('small')} (tmpfs) holding ${rig.path('small/big.simg')} has `);
    expect(e.message).toMatch(/has [\d.]+ (B|KiB|MiB) free of 5\.0 MiB$/);
    expect(e.hint).toBe(`free space on ${rig.path('small')}, or point the output at a file system with room`);
    expect(r.events.some((x) => x.type === 'target-done' && x.target === 'other')).toBe(true);
    expect(r.events.at(-1)).toMatchObject({ type: 'run-done', summary: { built: 1, failed: 1 } });
    expect(readFileSync(rig.path('small/big.simg')).equals(before)).toBe(true);
    expect(r.stderr).not.toContain('internal error');
  });

  it('EROFS: a sandbox output on a read-only mount fails with the path and the mount, the run goes on and ends', async () => {
    mkdirSync(rig.path('ro'));
    readOnly(rig.path('ro'));
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: box.def\n    format: sandbox\n    output: ro/box/\n  other:\n    from: ./rootfs\n    recipe: other.def\n    format: squashfs\n',
      'box.def': recipe('true'),
      'other.def': recipe('true'),
    });
    const r = await json(['--keep-going', '-j', '1']);
    expect(r.code).toBe(1);
    const e = failure(r.events, 'box')!;
    expect(e.reason).toBe('read-only');
    expect(e.message).toMatch(new RegExp(`^box \\(export\\): EROFS, read-only file system, writing ${rig.path('ro')}/\\.box\\.tmp-\\d+-[0-9a-f]+ \\(mkdir\\) \\(mounted read-only at ${rig.path('ro')}\\)$`));
    expect(e.hint).toBe(`remount ${rig.path('ro')} read-write, or point the output (or the cache) at a writable folder`);
    expect(r.events.some((x) => x.type === 'target-done' && x.target === 'other')).toBe(true);
    expect(r.events.at(-1)).toMatchObject({ type: 'run-done', summary: { built: 1, failed: 1 } });

    const plain = await rig.spawn(['up', '--progress', 'plain', 'box'], { env });
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/^error: box \(export\): EROFS, read-only file system, writing /);
    expect(plain.stderr).not.toContain('internal error');
    expect(plain.stdout).toMatch(/built 0, fresh 0, failed 1, skipped 0/);
  });

  it('a read-only cache: fresh targets are fresh, a stale one fails naming the cache path, and the run ends', async () => {
    rig.write({ 'orchestrator.yaml': TWO('dist/big.simg'), 'big.def': recipe('echo v1 > /v'), 'other.def': recipe('echo other > /o') });
    expect((await json([])).code).toBe(0);
    readOnly(rig.path('cache'));
    rig.write({ 'big.def': recipe('echo v2 > /v') });
    const r = await json(['--keep-going']);
    expect(r.code).toBe(1);
    expect(r.events.some((x) => x.type === 'target-fresh' && x.target === 'other')).toBe(true);
    const e = failure(r.events, 'big')!;
    expect(e.message).toContain('EROFS');
    expect(e.message).toContain(rig.path('cache'));
    expect(r.events.at(-1)).toMatchObject({ type: 'run-done', summary: { built: 0, fresh: 1, failed: 1 } });
    expect(existsSync(rig.path('dist/big.simg'))).toBe(true);
    expect(r.stderr).not.toContain('internal error');
  });
});
