import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { BIN } from '../helpers/cli.js';
import { Rig } from '../helpers/rig.js';

/**
 * Every build step runs in its own pid namespace: what a `%post` starts in the background ends with
 * the step, and a killed orchestrator takes the running step (and its mounts) with it.
 */
let rig: Rig;
let env: NodeJS.ProcessEnv;
// A number nobody else sleeps for: its argv marks this test's processes in /proc.
let marker: string;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-steps-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache') };
  delete env['CI'];
  marker = String(4_000_000 + Math.floor(Math.random() * 1_000_000));
});
afterEach(() => {
  for (const pid of markedProcesses()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rig.cleanup();
});

function writeProject(post: string): void {
  rig.write({
    'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n',
    'app.def': `%post\n    ${post}\n%runscript\n    echo hi\n`,
  });
}

function procs(): string[] {
  return readdirSync('/proc').filter((x) => /^\d+$/.test(x));
}

/** Processes whose argv is `sleep MARKER` (busybox's sleep, in any namespace). */
function markedProcesses(): number[] {
  const out: number[] = [];
  for (const p of procs()) {
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8') === `sleep\0${marker}\0`) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Processes that still see a mount of the rig (the step's overlay has its upper in the rig's cache). */
function processesWithRigMounts(): number[] {
  const out: number[] = [];
  for (const p of procs()) {
    try {
      if (readFileSync(`/proc/${p}/mountinfo`, 'utf8').includes(rig.dir)) out.push(Number(p));
    } catch {
      // gone meanwhile, or a kernel thread
    }
  }
  return out;
}

/** Waits until `f` holds; the kernel ends a namespace's processes asynchronously. Bounded by the test timeout. */
async function eventually(f: () => boolean): Promise<void> {
  while (!f()) await new Promise((r) => setTimeout(r, 50));
}

describe('build steps in their own pid namespace', () => {
  it('ends a background job a %post left running with its output on the log pipe; the build completes', async () => {
    writeProject(`echo started; (sleep ${marker} &); echo done`);
    const r = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/built 1/);
    expect(markedProcesses()).toEqual([]);
  }, 60_000);

  it('ends a background job whose output is redirected', async () => {
    writeProject(`(sleep ${marker} >/dev/null 2>&1 </dev/null &); echo done`);
    const r = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(r.code).toBe(0);
    expect(markedProcesses()).toEqual([]);
  }, 60_000);

  for (const signal of ['SIGKILL', 'SIGHUP'] as const) {
    it(`${signal} of orchestrator mid-%post leaves no process and no mount behind`, async () => {
      writeProject(`(sleep ${marker} &); echo started; sleep ${marker}`);
      const child = spawn(process.execPath, [BIN, 'up', '--progress', 'plain'], { cwd: rig.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
      let out = '';
      await new Promise<void>((resolve) =>
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('| started')) resolve();
        }),
      );
      await eventually(() => markedProcesses().length === 2);
      expect(processesWithRigMounts().length).toBeGreaterThan(0);
      child.kill(signal);
      await closed;
      await eventually(() => markedProcesses().length === 0);
      await eventually(() => processesWithRigMounts().length === 0);
      expect(markedProcesses()).toEqual([]);
      expect(processesWithRigMounts()).toEqual([]);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(rig.dir);
    }, 60_000);
  }
});
