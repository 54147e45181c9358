import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

/**
 * `orchestrator up --watch` end to end: the built CLI as a child, real builds on a busybox root
 * folder (real overlay mounts, real exports), real file edits. Assertions wait for output lines
 * (never for a time) and check what ran between them.
 */
let rig: Rig;
let env: NodeJS.ProcessEnv;
let watcher: Watching | undefined;

/** A running `up --watch`: its output so far, and a way to wait for a line. */
class Watching {
  out = '';
  err = '';
  readonly closed: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (c: Buffer) => (this.out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (this.err += c.toString()));
    this.closed = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  }

  /**
   * Waits until stdout, from offset `from`, contains `what`; returns the offset just after it.
   * Fails (with the output so far) if the process ends first.
   */
  async waitFor(what: string | RegExp, from = 0): Promise<number> {
    for (;;) {
      const rest = this.out.slice(from);
      const m = typeof what === 'string' ? (rest.includes(what) ? { index: rest.indexOf(what), length: what.length } : undefined) : (() => {
        const r = what.exec(rest);
        return r ? { index: r.index, length: r[0].length } : undefined;
      })();
      if (m) return from + m.index + m.length;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`up --watch ended (${this.child.exitCode ?? this.child.signalCode}) before ${String(what)} was printed.\nstdout:\n${this.out}\nstderr:\n${this.err}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Ctrl-C, and the exit status. */
  async stop(): Promise<number | null> {
    this.child.kill('SIGINT');
    return this.closed;
  }
}

function startWatch(args: string[] = [], debounce = 100): Watching {
  const child = spawn(process.execPath, [BIN, 'up', '--watch', '--debounce', String(debounce), '--progress', 'plain', ...args], {
    cwd: rig.dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  watcher = new Watching(child);
  return watcher;
}

const count = (text: string, what: string) => text.split(what).length - 1;

const MANIFEST = 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n';
const recipe = (options: { post?: string; runscript?: string } = {}) =>
  `%files\n    data/a.txt /a.txt\n    conf/*.conf /etc/\n%post\n    ${options.post ?? 'echo post-ran; cat /a.txt > /copy.txt'}\n%runscript\n    ${options.runscript ?? 'echo v1'}\n`;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-watch-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache'), NO_COLOR: '1' };
  delete env['CI'];
  rig.write({ 'orchestrator.yaml': MANIFEST, 'app.def': recipe(), 'data/a.txt': 'a1\n', 'conf/x.conf': 'x1\n' });
});

afterEach(async () => {
  if (watcher && watcher.child.exitCode === null && watcher.child.signalCode === null) {
    watcher.child.kill('SIGINT');
    await watcher.closed;
  }
  watcher = undefined;
  rig.cleanup();
});

/** The processes below `pid` now (pid → command line), from /proc. */
function descendants(pid: number): Map<number, string> {
  const children = new Map<number, number[]>();
  const cmdline = new Map<number, string>();
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(p)]);
      cmdline.set(Number(p), readFileSync(`/proc/${p}/cmdline`, 'utf8'));
    } catch {
      // gone meanwhile
    }
  }
  const out = new Map<number, string>();
  const visit = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.set(c, cmdline.get(c) ?? '');
      visit(c);
    }
  };
  visit(pid);
  return out;
}

/** Which of `processes` still run (same pid, same command line). */
function stillRunning(processes: Map<number, string>): string[] {
  return [...processes].filter(([pid, cmd]) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === cmd;
    } catch {
      return false;
    }
  }).map(([pid, cmd]) => `${pid}: ${cmd.replace(/\0/g, ' ')}`);
}

describe('orchestrator up --watch', () => {
  it('rebuilds only what an edit touches: %runscript → metadata only; a %files source → %files on; an unread file → nothing', async () => {
    const w = startWatch();
    let at = await w.waitFor('watch: waiting for changes');
    expect(w.out).toContain('app: stale: never built');
    expect(w.out).toMatch(/built 1, fresh 0, failed 0, skipped 0/);
    expect(readFileSync(rig.path('build/app/.singularity.d/runscript'), 'utf8')).toContain('echo v1');

    // %runscript: only the metadata step runs again (and the export).
    rig.write({ 'app.def': recipe({ runscript: 'echo v2' }) });
    const start = await w.waitFor('watch: 1 file changed (app.def); rebuilding app', at);
    at = await w.waitFor('watch: waiting for changes', start);
    let iteration = w.out.slice(start, at);
    expect(iteration).toContain('app: metadata running');
    expect(iteration).not.toContain('%post running');
    expect(iteration).not.toContain('%files running');
    expect(iteration).toMatch(/app: built in .* \(1 step run, 2 from cache\)/);
    expect(iteration).toMatch(/built 1, fresh 0, failed 0, skipped 0/);
    expect(readFileSync(rig.path('build/app/.singularity.d/runscript'), 'utf8')).toContain('echo v2');

    // A %files source: %files and what follows run again.
    rig.write({ 'data/a.txt': 'a2\n' });
    const start2 = await w.waitFor('watch: 1 file changed (data/a.txt); rebuilding app', at);
    at = await w.waitFor('watch: waiting for changes', start2);
    iteration = w.out.slice(start2, at);
    expect(iteration).toContain('app: %files running');
    expect(iteration).toContain('app: %post running');
    expect(iteration).toContain('app: metadata running');
    expect(readFileSync(rig.path('build/app/copy.txt'), 'utf8')).toBe('a2\n');

    // Files no step reads (one outside every watched path, one beside a glob's matches), then a
    // marker edit: the next run names only the marker.
    rig.write({ 'notes.txt': 'not an input\n', 'conf/readme.md': 'not matched by conf/*.conf\n' });
    writeFileSync(rig.path('.orchestrator/scratch.txt'), 'the state folder is not watched');
    rig.write({ 'conf/y.conf': 'y1\n' });
    const marker = await w.waitFor(/watch: \d+ files? changed \(([^)]*)\); rebuilding app/, at);
    expect(w.out.slice(at, marker)).toMatch(/watch: 1 file changed \(conf\/y\.conf\); rebuilding app$/);
    expect(w.out.slice(at, marker)).not.toContain('building\n');
    at = await w.waitFor('watch: waiting for changes', marker);
    expect(readFileSync(rig.path('build/app/etc/y.conf'), 'utf8')).toBe('y1\n');

    expect(await w.stop()).toBe(130);
    expect(w.out).toMatch(/watch: stopped\n$/);
    expect(w.err).toBe('');
  });

  it('rebuilds the changed target and those built from it, not what it is built from; watches only the named targets', async () => {
    rig.write({
      'orchestrator.yaml': `${MANIFEST}  final:\n    from: target:app\n    recipe: final.def\n    output: dist/final.simg\n  unrelated:\n    from: ./rootfs\n    recipe: unrelated.def\n    format: squashfs\n`,
      'final.def': '%runscript\n    echo final\n',
      'unrelated.def': '%runscript\n    echo unrelated\n',
    });
    const w = startWatch(['final']);
    let at = await w.waitFor('watch: waiting for changes');
    expect(w.out).toMatch(/built 2, fresh 0/);
    expect(w.out).not.toContain('unrelated');

    rig.write({ 'final.def': '%runscript\n    echo final v2\n' });
    const own = await w.waitFor('watch: 1 file changed (final.def); rebuilding final\n', at);
    at = await w.waitFor('watch: waiting for changes', own);
    expect(w.out.slice(own, at)).not.toContain('app:');

    rig.write({ 'data/a.txt': 'a2\n' });
    const base = await w.waitFor('watch: 1 file changed (data/a.txt); rebuilding app, final\n', at);
    at = await w.waitFor('watch: waiting for changes', base);
    expect(w.out.slice(base, at)).toContain('final: stale: dependency app changed');
    expect(w.out.slice(base, at)).toMatch(/built 2, fresh 0, failed 0, skipped 0/);

    // Not a requested target: its recipe is not watched. The marker shows nothing ran for it.
    rig.write({ 'unrelated.def': '%runscript\n    echo changed\n' });
    rig.write({ 'final.def': '%runscript\n    echo final v3\n' });
    const marker = await w.waitFor(/watch: \d+ files? changed \(([^)]*)\); rebuilding [^\n]*\n/, at);
    expect(w.out.slice(at, marker)).toMatch(/watch: 1 file changed \(final\.def\); rebuilding final\n$/);
    await w.waitFor('watch: waiting for changes', marker);
    expect(await w.stop()).toBe(130);
    expect(w.err).toBe('');
  });

  it('makes one rebuild of a burst of edits within the debounce', async () => {
    const w = startWatch([], 400);
    let at = await w.waitFor('watch: waiting for changes');
    for (let i = 2; i <= 6; i++) rig.write({ 'app.def': recipe({ runscript: `echo v${i}` }) });
    rig.write({ 'data/a.txt': 'burst\n' });
    const start = await w.waitFor(/watch: 2 files changed \((app\.def, data\/a\.txt|data\/a\.txt, app\.def)\); rebuilding app\n/, at);
    at = await w.waitFor('watch: waiting for changes', start);
    // Then a marker: no second run came in between.
    rig.write({ 'conf/x.conf': 'x2\n' });
    const marker = await w.waitFor('watch: 1 file changed (conf/x.conf); rebuilding app', at);
    await w.waitFor('watch: waiting for changes', marker);
    expect(count(w.out, 'rebuilding app')).toBe(2);
    expect(count(w.out.slice(start, marker), 'app: building')).toBe(1);
    expect(readFileSync(rig.path('build/app/.singularity.d/runscript'), 'utf8')).toContain('echo v6');
    expect(await w.stop()).toBe(130);
  });

  it('stops a %post whose inputs change while it runs, and runs it once more', async () => {
    // %post is slow while /a.txt says so: the first build would take a minute.
    rig.write({ 'app.def': recipe({ post: 'echo started; if [ "$(cat /a.txt)" = slow ]; then sleep 60; fi; cat /a.txt > /copy.txt' }), 'data/a.txt': 'slow\n' });
    const w = startWatch();
    const running = await w.waitFor('app: | started');
    rig.write({ 'data/a.txt': 'fast\n' });
    const restart = await w.waitFor('watch: data/a.txt changed while building app; stopping that build to start again', running);
    const interrupted = await w.waitFor('app: %post interrupted', restart);
    await w.waitFor('app: interrupted', interrupted);
    // Only this target was stopped: the run itself ends as a run does, the stopped target counted as skipped.
    await w.waitFor(/built 0, fresh 0, failed 0, skipped 1/, interrupted);
    const next = await w.waitFor('watch: 1 file changed (data/a.txt); rebuilding app', interrupted);
    const end = await w.waitFor('watch: waiting for changes', next);
    const second = w.out.slice(next, end);
    expect(count(second, 'app: %post running')).toBe(1);
    expect(count(second, 'app: | started')).toBe(1);
    expect(second).toMatch(/built 1, fresh 0, failed 0, skipped 0/);
    expect(count(w.out, 'app: | started')).toBe(2);
    expect(readFileSync(rig.path('build/app/copy.txt'), 'utf8')).toBe('fast\n');
    expect(w.err).toBe('');
    expect(readdirSync(rig.path('cache/tmp'))).toEqual([]);
    expect(await w.stop()).toBe(130);
  });

  it('stops only the target whose recipe changes during a build; the other one goes on and is built once', async () => {
    const post = (name: string, rest: string) => `%post\n    echo started-${name}; ${rest}\n`;
    rig.write({
      'orchestrator.yaml': `${MANIFEST.replace('  app:', '  one:').replace('app.def', 'one.def')}  two:\n    from: ./rootfs\n    recipe: two.def\n    format: sandbox\n`,
      // one is slow until its recipe is edited; two takes a few seconds, so that it is still
      // building when one is stopped (were it done before, the assertions below hold all the same).
      'one.def': post('one', 'sleep 60'),
      'two.def': post('two', 'sleep 4; echo two-done > /two.txt'),
    });
    const w = startWatch(['-j', '2']);
    await w.waitFor('one: | started-one');
    await w.waitFor('two: | started-two');
    const edit = w.out.length;
    rig.write({ 'one.def': post('one', 'echo fast') });
    const restart = await w.waitFor('watch: one.def changed while building one; stopping that build to start again', edit);
    await w.waitFor('one: interrupted', restart);
    await w.waitFor('two: built', edit);
    const next = await w.waitFor('watch: 1 file changed (one.def); rebuilding one\n', restart);
    await w.waitFor('watch: waiting for changes', next);
    expect(count(w.out, 'two: | started-two')).toBe(1);
    expect(w.out).not.toContain('two: interrupted');
    expect(count(w.out.slice(next), 'one: | started-one')).toBe(1);
    expect(readFileSync(rig.path('build/two/two.txt'), 'utf8')).toBe('two-done\n');
    expect(w.err).toBe('');
    expect(await w.stop()).toBe(130);
  });

  it('reports a target stopped on its own in the JSON progress: watch-restart names it, its target-failed says interrupted', async () => {
    const post = (name: string, rest: string) => `%post\n    echo started-${name}; ${rest}\n`;
    rig.write({
      'orchestrator.yaml': `${MANIFEST.replace('  app:', '  one:').replace('app.def', 'one.def')}  two:\n    from: ./rootfs\n    recipe: two.def\n    format: sandbox\n`,
      'one.def': post('one', 'sleep 60'),
      'two.def': post('two', 'sleep 4'),
    });
    const w = startWatch(['-j', '2', '--progress', 'json']);
    await w.waitFor('started-one');
    await w.waitFor('started-two');
    const edit = w.out.length;
    rig.write({ 'one.def': post('one', 'echo fast') });
    await w.waitFor('"type":"watch-restart","paths":["one.def"],"targets":["one"]', edit);
    await w.waitFor(/"type":"target-failed","target":"one","error":\{"severity":"error","reason":"interrupted"/, edit);
    await w.waitFor('"type":"target-done","target":"two"', edit);
    await w.waitFor('"type":"watch-waiting"', edit);
    expect(w.out).not.toMatch(/"type":"target-failed","target":"two"/);
    expect(await w.stop()).toBe(130);
  });

  it.each([
    ['a %files glob', { 'app.def': '%files\n    extra/*/*.txt /opt/\n%runscript\n    echo v1\n' }],
    ['an inputs glob', { 'app.def': '%runscript\n    echo v1\n', 'orchestrator.yaml': `${MANIFEST}    inputs: ["extra/*/*.txt"]\n` }],
  ])('sees a new file in a folder made after the watch started, under %s: one rebuild', async (_, files: Record<string, string>) => {
    rig.write({ ...files, 'extra/a/1.txt': '1\n' });
    const w = startWatch();
    const at = await w.waitFor('watch: waiting for changes');
    mkdirSync(rig.path('extra/b'));
    writeFileSync(rig.path('extra/b/2.txt'), '2\n');
    const start = await w.waitFor('watch: 1 file changed (extra/b/2.txt); rebuilding app\n', at);
    const end = await w.waitFor('watch: waiting for changes', start);
    expect(count(w.out.slice(at), 'rebuilding app')).toBe(1);
    expect(w.out.slice(start, end)).toMatch(/built 1, fresh 0, failed 0, skipped 0/);
    expect(await w.stop()).toBe(130);
  });

  it('takes a cache.dir edit without a restart: the next build uses the new cache', async () => {
    rig.write({ 'orchestrator.yaml': `${MANIFEST}cache:\n  dir: cache-one\n` });
    const w = startWatch();
    const at = await w.waitFor('watch: waiting for changes');
    expect(readdirSync(rig.path('cache-one/snapshots')).length).toBeGreaterThan(0);
    rig.write({ 'orchestrator.yaml': `${MANIFEST}cache:\n  dir: cache-two\n`, 'app.def': recipe({ runscript: 'echo v2' }) });
    const start = await w.waitFor(/watch: 2 files changed \([^)]*\); rebuilding app\n/, at);
    const end = await w.waitFor('watch: waiting for changes', start);
    // Nothing of cache-one is found there: every step runs again, into cache-two.
    expect(w.out.slice(start, end)).toMatch(/app: built in [^(]*\(3 steps run, 0 from cache\)/);
    expect(readdirSync(rig.path('cache-two/snapshots')).length).toBeGreaterThan(0);
    expect(w.err).toBe('');
    expect(await w.stop()).toBe(130);
  });

  it('reports a broken recipe or manifest, keeps watching, and rebuilds when it is fixed; a failing build keeps the output', async () => {
    const w = startWatch();
    let at = await w.waitFor('watch: waiting for changes');

    rig.write({ 'app.def': `${recipe()}%rnuscript\n    echo\n` });
    at = await w.waitFor('watch: 1 error; nothing is built until the manifest and recipes are fixed', at);
    at = await w.waitFor('watch: waiting for changes', at);
    expect(w.err).toContain("app.def:8:1: error: %rnuscript is not a section\n  %rnuscript\n  ^~~~~~~~~~\n  hint: did you mean '%runscript'?\n");

    // While broken, an input edit builds nothing; the fix builds it and that edit.
    rig.write({ 'data/a.txt': 'while-broken\n' });
    at = await w.waitFor('watch: 1 error; nothing is built', at);
    rig.write({ 'app.def': recipe({ runscript: 'echo fixed' }) });
    const fixed = await w.waitFor('watch: 1 file changed (app.def); rebuilding app', at);
    at = await w.waitFor('watch: waiting for changes', fixed);
    expect(w.out.slice(fixed, at)).toContain('app: %files running');
    expect(readFileSync(rig.path('build/app/copy.txt'), 'utf8')).toBe('while-broken\n');
    expect(readFileSync(rig.path('build/app/.singularity.d/runscript'), 'utf8')).toContain('echo fixed');

    // A broken manifest, then fixed.
    const errBefore = w.err.length;
    rig.write({ 'orchestrator.yaml': `${MANIFEST}    formt: squashfs\n` });
    at = await w.waitFor('watch: 1 error; nothing is built', at);
    expect(w.err.slice(errBefore)).toContain("orchestrator.yaml:7:5: error: unknown key 'formt'");
    rig.write({ 'orchestrator.yaml': MANIFEST });
    const back = await w.waitFor('watch: 1 file changed (orchestrator.yaml); rebuilding app', at);
    at = await w.waitFor('watch: waiting for changes', back);
    expect(w.out.slice(back, at)).toContain('app: fresh');

    // A failing build: its error, the previous output kept, still watching.
    rig.write({ 'app.def': recipe({ post: 'echo failing; exit 3' }) });
    const failing = await w.waitFor('watch: 1 file changed (app.def); rebuilding app', at);
    at = await w.waitFor('watch: waiting for changes', failing);
    expect(w.out.slice(failing, at)).toContain('app: FAILED');
    expect(w.out.slice(failing, at)).toMatch(/built 0, fresh 0, failed 1, skipped 0/);
    expect(w.err).toContain('app.def:4:1: error: %post failed with exit status 3');
    expect(readFileSync(rig.path('build/app/.singularity.d/runscript'), 'utf8')).toContain('echo fixed');
    rig.write({ 'app.def': recipe({ runscript: 'echo again' }) });
    at = await w.waitFor('watch: waiting for changes', await w.waitFor('rebuilding app', at));
    expect(readFileSync(rig.path('build/app/.singularity.d/runscript'), 'utf8')).toContain('echo again');
    expect(await w.stop()).toBe(130);
  });

  it('on Ctrl-C during a build: exits 130 and leaves no mount, temp folder or process behind', async () => {
    rig.write({ 'app.def': recipe({ post: 'echo started; sleep 60' }) });
    const w = startWatch();
    await w.waitFor('app: | started');
    const below = descendants(w.child.pid!);
    expect([...below.values()].some((cmd) => cmd.startsWith('sleep\x0060'))).toBe(true);
    expect(await w.stop()).toBe(130);
    expect(w.out).toMatch(/interrupted: built 0/);
    expect(w.out).toMatch(/watch: stopped\n$/);
    expect(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(rig.dir))).toEqual([]);
    expect(readdirSync(rig.path('cache/tmp'))).toEqual([]);
    expect(stillRunning(below)).toEqual([]);
    expect(existsSync(rig.path('build/app'))).toBe(false);
  });

  it('refuses --watch with --dry-run, and --debounce without --watch', async () => {
    const a = await rig.spawn(['up', '--watch', '--dry-run'], { env });
    expect(a.code).toBe(2);
    expect(a.stderr).toBe("error: --watch and --dry-run cannot be used together\n  hint: use 'orchestrator plan' to see what is stale\n");
    const b = await rig.spawn(['up', '--debounce', '50'], { env });
    expect(b.code).toBe(2);
    expect(b.stderr).toBe('error: --debounce only applies with --watch\n');
    const c = await rig.spawn(['up', '--watch', '--debounce', 'soon'], { env });
    expect(c.code).toBe(2);
    expect(c.stderr).toBe("error: --debounce 'soon' is not a whole number of milliseconds\n");
    expect(existsSync(rig.path('build'))).toBe(false);
  });
});
