import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli, runCliInProcess } from '../helpers/cli.js';

// The SIF test images of apptainer/sif and siftool's output for each (../shared/sif-testdata,
// beside the repository; its README says where they come from). SIF_TESTDATA names another copy
// (a git worktree has no ../shared beside it).
const TESTDATA = process.env['SIF_TESTDATA'] ?? join(REPO_ROOT, '..', 'shared', 'sif-testdata');
const present = existsSync(TESTDATA);
const images = present ? readdirSync(TESTDATA).filter((f) => f.endsWith('.sif')).map((f) => f.slice(0, -4)).sort() : [];

if (!present) {
  it.skip('sif list/header against siftool: skipped, ../shared/sif-testdata is absent (the shared folder is not beside the repository; SIF_TESTDATA names another copy)', () => undefined);
}

describe.skipIf(!present)('sif list and sif header print what siftool prints', () => {
  it('finds the test images', () => {
    expect(images.length).toBeGreaterThanOrEqual(6);
  });

  for (const name of images) {
    it(`sif list ${name}.sif`, async () => {
      const r = await runCliInProcess(['sif', 'list', join(TESTDATA, `${name}.sif`)]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(readFileSync(join(TESTDATA, `${name}.list.txt`), 'utf8'));
    });
    const headerFile = join(TESTDATA, `${name}.header.txt`);
    it.skipIf(!existsSync(headerFile))(`sif header ${name}.sif`, async () => {
      const r = await runCliInProcess(['sif', 'header', join(TESTDATA, `${name}.sif`)]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(readFileSync(headerFile, 'utf8'));
    });
  }
});

describe.skipIf(!present)('sif --json', () => {
  it('list --json gives each object with its metadata', async () => {
    const r = await runCliInProcess(['sif', 'list', '--json', join(TESTDATA, 'two-groups-signed-legacy.sif')]);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(list.map((o) => o['type'])).toEqual(['FS', 'FS', 'FS', 'Signature']);
    expect(list[1]).toMatchObject({ id: 2, group: 1, link: null, offset: 36864, size: 4, fsType: 'Squashfs', partType: '*System', arch: '386' });
    expect(list[3]).toMatchObject({ id: 4, group: 1, link: { object: 2 }, offset: 45056, size: 609, hashType: 'SHA-384' });
  });

  it('header --json gives the fields, times as ISO strings', async () => {
    const r = await runCliInProcess(['sif', 'header', '--json', join(TESTDATA, 'two-groups-signed-legacy.sif')]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      launchScript: '#!/usr/bin/env run-singularity\n',
      version: '01',
      primaryArch: '386',
      id: '0b19ec2c-0b08-46c9-95ae-fa88cd9e48a1',
      createdAt: '2020-05-22T19:30:59.000Z',
      modifiedAt: '2020-06-20T20:16:44.000Z',
      descriptorsFree: 44,
      descriptorsTotal: 48,
      descriptorsOffset: 4096,
      descriptorsSize: 28080,
      dataOffset: 32768,
      dataSize: 12897,
    });
  });

  it('an unknown subcommand is a usage error', async () => {
    const r = await runCliInProcess(['sif', 'lsit', join(TESTDATA, 'empty.sif')]);
    expect(r.stderr).toBe("error: unknown sif command 'lsit': expected list, header, verify\n  hint: see 'orchestrator sif --help'\n");
    expect(r.code).toBe(2);
  });
});

describe.skipIf(!present)("a SIF written by apptainer/sif's own code", () => {
  it('is a build source: its primary squashfs partition (after a raw one, for 386) becomes a sandbox', async () => {
    const work = mkdtempSync(join(tmpdir(), 'orch-sif-source-'));
    try {
      const sif = join(TESTDATA, 'two-groups.sif');
      const r = await runCli(['build', '--sandbox', join(work, 'out'), sif], { cwd: work, env: { ...process.env, ORCHESTRATOR_CACHE: join(work, 'cache') } });
      expect(r.code).toBe(0);
      expect(readdirSync(join(work, 'out')).filter((n) => !n.startsWith('.') && n !== 'environment' && n !== 'singularity')).toContain('hello.txt');
      const inspect = await runCli(['inspect', '--json', sif], { cwd: work });
      expect(JSON.parse(inspect.stdout)).toEqual({ data: { attributes: { labels: null } }, type: 'container' });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
