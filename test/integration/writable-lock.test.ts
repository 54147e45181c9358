import { spawn, type ChildProcessByStdio, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Readable } from 'node:stream';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writableSessionHolder } from '../../src/runtime/writable-lock.js';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { BIN } from '../helpers/cli.js';
import { Rig } from '../helpers/rig.js';

/** `up` and `clean` never replace or remove an image open in a writable session, even with --force. */
let rig: Rig;
let env: NodeJS.ProcessEnv;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-wlock-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache') };
  delete env['CI'];
  rig.write({
    'orchestrator.yaml': 'version: 1\ntargets:\n  dev:\n    from: ./rootfs\n    recipe: dev.def\n    format: sandbox\n',
    'dev.def': '%post\n    echo built > /built.txt\n',
  });
});
afterEach(() => rig.cleanup());

/** Resolves once the child's stdout holds `text`; rejects with what it wrote if it ends first. */
function untilOutput(child: ChildProcessWithoutNullStreams | ChildProcessByStdio<null, Readable, Readable>, text: string): Promise<string> {
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes(text)) resolve(out);
    });
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('close', (code) => reject(new Error(`ended (${code}) before printing '${text}'\nstdout: ${out}\nstderr: ${err}`)));
  });
}

/** `exec --writable build/dev sh -c ...` in the background: it says "started", waits for a line on stdin, then writes /late.txt. */
async function openWritableSession(): Promise<{ pid: number; finish: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'exec', '--writable', 'build/dev', 'sh', '-c', 'echo started; read x; echo late > /late.txt'], { cwd: rig.dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  await untilOutput(child, 'started');
  return {
    pid: child.pid!,
    finish: () => {
      child.stdin.end('go\n');
      return closed;
    },
  };
}

describe('writable sessions and up/clean', () => {
  it('up --force and clean refuse while exec --writable runs on the sandbox; the session keeps its root; afterwards both work', async () => {
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    expect(writableSessionHolder(rig.path('build/dev'))).toBeUndefined();
    const session = await openWritableSession();
    expect(writableSessionHolder(rig.path('build/dev'))).toEqual({ pid: session.pid, action: 'exec' });

    const up = await rig.spawn(['up', '--progress', 'plain', '--force'], { env });
    const refusal =
      `orchestrator.yaml:3:3: error: sandbox build/dev/ is open in a writable exec (pid ${session.pid})\n` +
      '    dev:\n    ^~~\n' +
      '  hint: end that session first; --force does not override this (it would pull the image from under it)\n';
    expect(up.stderr).toBe(refusal);
    expect(up.stdout).toMatch(/dev: FAILED\nbuilt 0, fresh 0, failed 1, skipped 0/);
    expect(up.code).toBe(1);

    const clean = await rig.spawn(['clean'], { env });
    expect(clean.stderr).toBe(refusal);
    expect(clean.stdout).toBe('');
    expect(clean.code).toBe(1);
    expect(readFileSync(rig.path('build/dev/built.txt'), 'utf8')).toBe('built\n');

    // The session still has its root: it writes into the sandbox.
    expect(await session.finish()).toBe(0);
    expect(readFileSync(rig.path('build/dev/late.txt'), 'utf8')).toBe('late\n');
    expect(writableSessionHolder(rig.path('build/dev'))).toBeUndefined();

    const again = await rig.spawn(['up', '--progress', 'plain', '--force'], { env });
    expect(again.code).toBe(0);
    expect(existsSync(rig.path('build/dev/late.txt'))).toBe(false);
    const cleaned = await rig.spawn(['clean'], { env });
    expect(cleaned.code).toBe(0);
    expect(existsSync(rig.path('build/dev'))).toBe(false);
  }, 120_000);

  it('a writable session opened while up builds: the export refuses to replace the sandbox', async () => {
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    // %setup runs on the host: it waits there until the session is open.
    rig.write({ 'dev.def': `%setup\n    echo started; while [ ! -e ${rig.path('go')} ]; do sleep 0.1; done\n%post\n    echo built > /built.txt\n` });
    const up = spawn(process.execPath, [BIN, 'up', '--progress', 'plain'], { cwd: rig.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    up.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const upDone = new Promise<number | null>((resolve) => up.on('close', resolve));
    await untilOutput(up, '| started');
    const session = await openWritableSession();
    rig.write({ go: '' });
    // A hang names where it is and what up said (the file's timeout alone would say nothing).
    const hang = setTimeout(() => up.kill('SIGKILL'), 90_000);
    const upCode = await upDone;
    clearTimeout(hang);
    expect(err).not.toBe('');
    expect(upCode).toBe(1);
    expect(err).toBe(
      `error: sandbox ${rig.path('build/dev')}/ is open in a writable exec (pid ${session.pid})\n` +
        '  hint: end that session first; --force does not override this (it would pull the image from under it)\n',
    );
    expect(await session.finish()).toBe(0);
    expect(readFileSync(rig.path('build/dev/late.txt'), 'utf8')).toBe('late\n');
  }, 120_000);

  it('a read-only or ephemeral session takes no lock', async () => {
    expect((await rig.spawn(['up', '--progress', 'plain'], { env })).code).toBe(0);
    const child = spawn(process.execPath, [BIN, 'exec', 'build/dev', 'sh', '-c', 'echo started; read x'], { cwd: rig.dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => c.toString().includes('started') && resolve()));
    expect(writableSessionHolder(rig.path('build/dev'))).toBeUndefined();
    child.stdin.end('go\n');
    expect(await closed).toBe(0);
  }, 120_000);
});
