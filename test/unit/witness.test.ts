import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReadSet } from '../../src/freshness/read-set.js';
import { checkWitness, recordWitness, takeProbe } from '../../src/freshness/witness.js';
import { StateDir } from '../../src/state/state-dir.js';

let dir: string;
let state: StateDir;
const key = { tool: 't', manifest: '/m', targets: ['a'] };
const tick = () => new Promise((r) => setTimeout(r, 20));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'orch-witness-'));
  state = new StateDir(dir);
  mkdirSync(state.root);
  mkdirSync(join(dir, 'data/deep'), { recursive: true });
  writeFileSync(join(dir, 'data/a.txt'), 'one');
  writeFileSync(join(dir, 'data/deep/b.txt'), 'two');
  writeFileSync(join(dir, 'data/c.csv'), '1,2');
  symlinkSync('data', join(dir, 'link'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Records a witness of `reads` as a run that began after everything was written. */
async function record(reads: ReadSet): Promise<boolean> {
  await tick();
  const probeMs = takeProbe(state);
  return recordWitness(state, key, { reads, targets: ['a', 'b'], probeMs });
}

function reads(): ReadSet {
  const r = new ReadSet();
  r.add(join(dir, 'data'));
  r.add(join(dir, 'link'));
  r.add(join(dir, 'missing'));
  r.addGlob(dir, 'data/*.csv');
  return r;
}

describe('the no-op witness', () => {
  it('answers with the fresh targets while nothing read has changed', async () => {
    expect(await record(reads())).toBe(true);
    expect((await checkWitness(state, key)).fresh).toEqual(['a', 'b']);
    expect((await checkWitness(state, key)).fresh).toEqual(['a', 'b']);
  });

  it.each<[string, () => void]>([
    ['a same-size edit deep in a tree', () => writeFileSync(join(dir, 'data/deep/b.txt'), 'owt')],
    ['a touch', () => utimesSync(join(dir, 'data/a.txt'), new Date(0), new Date(0))],
    ['a path that was missing appearing', () => writeFileSync(join(dir, 'missing'), '')],
    ['a symlink pointed elsewhere', () => (rmSync(join(dir, 'link')), mkdirSync(join(dir, 'other')), symlinkSync('other', join(dir, 'link')))],
    ['the project lock taken', () => writeFileSync(state.lock, '1\n')],
  ])('does not answer after %s', async (_, change) => {
    expect(await record(reads())).toBe(true);
    change();
    expect((await checkWitness(state, key)).fresh).toBeUndefined();
  });

  it('sees a new name in the folder a glob listed, and only the folder itself', async () => {
    const glob = () => {
      const r = new ReadSet();
      r.addGlob(dir, 'data/*.csv');
      return r;
    };
    expect(await record(glob())).toBe(true);
    // Shallow: a change deeper down is not the glob's business (its matches are read on their own).
    writeFileSync(join(dir, 'data/deep/b.txt'), 'owt');
    expect((await checkWitness(state, key)).fresh).toEqual(['a', 'b']);
    writeFileSync(join(dir, 'data/d.csv'), '');
    expect((await checkWitness(state, key)).fresh).toBeUndefined();
  });

  it('keeps a signature the run took before reading a tree, and sees the tree change after it', async () => {
    const { nativeAddon } = await import('../../src/native/addon.js');
    await tick();
    const r = new ReadSet();
    r.addSigned(join(dir, 'data'), await nativeAddon().treeStat(join(dir, 'data')));
    // Changed after the run signed it and before the witness: the witness holds the old signature.
    const probeMs = takeProbe(state);
    await tick();
    writeFileSync(join(dir, 'data/deep/b.txt'), 'owt');
    expect(await recordWitness(state, key, { reads: r, targets: ['a'], probeMs: probeMs! + 10_000 })).toBe(true);
    expect((await checkWitness(state, key)).fresh).toBeUndefined();
  });

  it('does not answer for another key (tool, manifest, targets, options)', async () => {
    expect(await record(reads())).toBe(true);
    expect((await checkWitness(state, { ...key, targets: ['b'] })).fresh).toBeUndefined();
  });

  it('is not written when something read changed after the probe, and an older one is removed', async () => {
    expect(await record(reads())).toBe(true);
    const probeMs = takeProbe(state);
    await tick();
    writeFileSync(join(dir, 'data/a.txt'), 'uno');
    expect(await recordWitness(state, key, { reads: reads(), targets: ['a'], probeMs })).toBe(false);
    expect(existsSync(state.witness)).toBe(false);
    expect((await checkWitness(state, key)).fresh).toBeUndefined();
  });

  it('is not written when something changed between the last check and the record, whatever the clocks say', async () => {
    expect(await record(reads())).toBe(true);
    await tick();
    writeFileSync(join(dir, 'data/deep/b.txt'), 'owt');
    const check = await checkWitness(state, key);
    expect(check.fresh).toBeUndefined();
    // The run reads b.txt as it is now; then it changes again before the witness is written. Its
    // ctime is newer than the probe too, but even a file system whose clock lags (a network file
    // system) is caught by the signature taken before the run.
    await tick();
    const probeMs = takeProbe(state);
    writeFileSync(join(dir, 'data/deep/b.txt'), 'two');
    const run = { reads: reads(), targets: ['a'], probeMs };
    expect(await recordWitness(state, key, { ...run, probeMs: Number.MAX_SAFE_INTEGER, seen: check.seen })).toBe(false);
    expect(await recordWitness(state, key, { ...run, probeMs: Number.MAX_SAFE_INTEGER })).toBe(true);
  });

  it('is not written for a glob with wildcards in a folder part, or without a probe', async () => {
    const r = reads();
    r.addGlob(dir, 'data/*/b.txt');
    expect(r.unwitnessable).toMatch(/data\/\*\/b.txt/);
    expect(await record(r)).toBe(false);
    expect(await recordWitness(state, key, { reads: reads(), targets: ['a'], probeMs: undefined })).toBe(false);
  });

  it('probes in the temp folder before there is a state folder, and a missing or corrupt witness answers nothing', async () => {
    const before = Date.now();
    const probe = takeProbe({ root: join(dir, 'nowhere') });
    expect(probe).toBeGreaterThanOrEqual(before - 1000);
    expect(existsSync(join(dir, 'nowhere'))).toBe(false);
    expect((await checkWitness(state, key)).fresh).toBeUndefined();
    writeFileSync(state.witness, '{not json');
    expect((await checkWitness(state, key)).fresh).toBeUndefined();
  });

  it('names the folder a glob lists, relative or absolute', () => {
    const r = new ReadSet();
    r.addGlob('/p/recipes', '../data/*.csv');
    r.addGlob('/p/recipes', '/abs/dir/x?.txt');
    r.addGlob('/p/recipes', '*.def');
    expect([...r.listings]).toEqual(['/p/data', '/abs/dir', '/p/recipes']);
    expect(r.unwitnessable).toBeUndefined();
  });
});

describe('settledBefore', () => {
  it('needs the newest ctime before the probe, and a whole second before it on whole-second file systems', async () => {
    const { settledBefore } = await import('../../src/core/file-system-now.js');
    expect(settledBefore(10_500, 10_499, false)).toBe(true);
    expect(settledBefore(10_500, 10_500, false)).toBe(false);
    // Whole-second times: a change later in second 10 would keep the ctime 10_000.
    expect(settledBefore(10_500, 10_000, true)).toBe(false);
    expect(settledBefore(10_500, 9_000, true)).toBe(true);
  });
});
