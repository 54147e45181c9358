// Why the squashfs writer is C (issue 15 asks to measure both): the same tree's data compressed
// by Node's zlib on worker_threads (one worker per core, BLOCK-byte blocks, gzip level LEVEL:
// only the data blocks, no hashing, no metadata, no output) vs the whole cold image write of
// native/squashfs/orchestrator-mksquashfs (read, hash, compress, write) at the same level and
// block size with every core.
//
// Usage: node bench/squashfs-c-vs-ts.mjs [TREE]   (default /usr/lib/x86_64-linux-gnu)
// Env: LEVEL (default 9, the C writer's gzip default), BLOCK (default 131072), RUNS (default 3;
// the median is reported). Standalone: not in run-all.sh. Run after `npm run build`.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readSync, closeSync, readdirSync, lstatSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { deflateSync } from 'node:zlib';

if (!isMainThread) {
  // A worker: compresses every block it is sent, returns the compressed size (a raw copy when
  // compression does not help, as squashfs stores it).
  const { level } = workerData;
  parentPort.on('message', (block) => {
    const out = deflateSync(block, { level });
    parentPort.postMessage(Math.min(out.length, block.length));
  });
} else {
  const tree = process.argv[2] ?? '/usr/lib/x86_64-linux-gnu';
  const level = Number(process.env.LEVEL ?? 9);
  const block = Number(process.env.BLOCK ?? 131072);
  const runs = Number(process.env.RUNS ?? 3);
  const cores = availableParallelism();
  const writer = fileURLToPath(new URL('../native/squashfs/orchestrator-mksquashfs', import.meta.url));

  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) files.push([p, st.size]);
    }
  };
  walk(tree);
  const bytes = files.reduce((n, [, s]) => n + s, 0);
  const mib = (n) => (n / 1048576).toFixed(0);
  console.log(`squashfs C vs TS: ${tree}: ${files.length} files, ${mib(bytes)} MiB; gzip level ${level}, ${block}-byte blocks, ${cores} cores, ${runs} run(s), median`);

  /** Node: reads every file in blocks on the main thread, compresses them on `cores` workers, at most 4 blocks in flight per worker. */
  async function node() {
    const workers = Array.from({ length: cores }, () => new Worker(fileURLToPath(import.meta.url), { workerData: { level } }));
    const inflight = workers.map(() => 0);
    const wake = workers.map(() => undefined);
    let compressed = 0;
    workers.forEach((w, i) =>
      w.on('message', (n) => {
        compressed += n;
        inflight[i]--;
        const r = wake[i];
        wake[i] = undefined;
        r?.();
      }),
    );
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    let next = 0;
    const send = async (buf) => {
      // Round robin; wait while the worker has 4 blocks already.
      const i = next++ % cores;
      while (inflight[i] >= 4) await new Promise((r) => (wake[i] = r));
      inflight[i]++;
      workers[i].postMessage(buf, [buf.buffer]);
    };
    for (const [p] of files) {
      const fd = openSync(p, 'r');
      for (;;) {
        const buf = Buffer.alloc(block);
        const n = readSync(fd, buf, 0, block, null);
        if (n === 0) break;
        await send(n === block ? buf : buf.subarray(0, n));
        if (n < block) break;
      }
      closeSync(fd);
    }
    while (inflight.some((n) => n > 0)) await new Promise((r) => setTimeout(r, 5));
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    await Promise.all(workers.map((w) => w.terminate()));
    return { wall, cpu: (cpu.user + cpu.system) / 1e6, out: compressed };
  }

  /** C: the whole cold image write, timed by /usr/bin/time (wall, user+sys, peak RSS). */
  function c() {
    const work = mkdtempSync(join(tmpdir(), 'orchestrator-c-vs-ts-'));
    try {
      const out = join(work, 'out.sqfs');
      const time = join(work, 'time');
      const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', time, writer, tree, out, '--level', String(level), '--block-size', String(block)], { stdio: 'inherit' });
      if (r.status !== 0) throw new Error(`${writer} failed`);
      const [e, u, s, m] = execFileSync('cat', [time], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
      return { wall: e, cpu: u + s, out: statSync(out).size, rss: m };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }

  const median = (xs, k) => xs.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const ns = [];
  const cs = [];
  // A first untimed pass warms the page cache, so both read from memory.
  await node();
  for (let i = 0; i < runs; i++) {
    cs.push(c());
    ns.push(await node());
  }
  const row = (name, xs, extra) =>
    console.log(`${name.padEnd(46)} ${median(xs, 'wall').toFixed(2).padStart(7)} s wall ${median(xs, 'cpu').toFixed(2).padStart(7)} s cpu ${(bytes / 1048576 / median(xs, 'wall')).toFixed(1).padStart(7)} MiB/s ${extra}`);
  row('C: orchestrator-mksquashfs, whole image', cs, `image ${mib(median(cs, 'out'))} MiB, peak RSS ${(median(cs, 'rss') / 1024).toFixed(0)} MiB`);
  row('Node: zlib on worker_threads, data blocks only', ns, `data ${mib(median(ns, 'out'))} MiB`);
  console.log(`Node / C: ${(median(ns, 'wall') / median(cs, 'wall')).toFixed(2)}x wall, ${(median(ns, 'cpu') / median(cs, 'cpu')).toFixed(2)}x cpu (Node's figure leaves out hashing, sparse detection, metadata and writing)`);
}
