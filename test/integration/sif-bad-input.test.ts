import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCliInProcess } from '../helpers/cli.js';

// Hand-damaged copies of a good SIF (apptainer/sif's one-group.sif: a raw object at 32768-32772
// and a squashfs partition at 36864-40960, descriptors at 4096-32176), one per failure kind. Each
// gets its one error and exit status 2, and the damaged file is left as it was.
const TESTDATA = process.env['SIF_TESTDATA'] ?? join(REPO_ROOT, '..', 'shared', 'sif-testdata');
const GOOD = join(TESTDATA, 'one-group.sif');
const present = existsSync(GOOD);
const DESCRIPTORS = 4096;
const DESCRIPTOR = 585;

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orch-sif-bad-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of the good image, changed by `damage`. */
function damaged(name: string, damage: (b: Buffer) => Buffer): string {
  const path = join(work, name);
  copyFileSync(GOOD, path);
  writeFileSync(path, damage(readFileSync(path)));
  return path;
}

async function expectError(path: string, message: string, hint: string): Promise<void> {
  const before = readFileSync(path);
  for (const sub of ['list', 'header']) {
    const r = await runCliInProcess(['sif', sub, path]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`error: ${path}: ${message}\n  hint: ${hint}\n`);
    expect(r.code).toBe(2);
  }
  expect(readFileSync(path).equals(before)).toBe(true);
}

if (!present) it.skip('damaged SIF files: skipped, ../shared/sif-testdata is absent (SIF_TESTDATA names another copy)', () => undefined);

describe.skipIf(!present)('damaged SIF files', () => {
  it('bad magic', async () => {
    const p = damaged('magic.sif', (b) => {
      b.write('XIF', 32, 'latin1');
      return b;
    });
    await expectError(p, 'not a SIF image: no "SIF_MAGIC" at byte 32', 'give a .sif file built by Apptainer, SingularityCE or orchestrator');
  });

  it('an unknown version', async () => {
    const p = damaged('version.sif', (b) => {
      b.write('02', 42, 'latin1');
      return b;
    });
    await expectError(p, "SIF version '02' is not supported (only 01)", 'the image was written by a SIF tool this orchestrator does not know');
  });

  it('truncated descriptors', async () => {
    const p = damaged('cut-table.sif', (b) => b);
    truncateSync(p, 10000);
    await expectError(
      p,
      'the SIF descriptor table (bytes 4096-32176) is not inside the file (10000 bytes)',
      'the file was cut short (an interrupted copy or download?); fetch it again',
    );
  });

  it('a header cut short', async () => {
    const p = damaged('cut-header.sif', (b) => b);
    truncateSync(p, 100);
    await expectError(p, 'the SIF global header is cut short (100 of 128 bytes)', 'the file was cut short; fetch it again');
  });

  it('an object past the end of the file', async () => {
    const p = damaged('cut-object.sif', (b) => b);
    truncateSync(p, 38000);
    await expectError(
      p,
      'SIF object 2 (FS, bytes 36864-40960) lies past the end of the file (38000 bytes)',
      'the file was cut short (an interrupted copy or download?); fetch it again',
    );
  });

  it('overlapping objects', async () => {
    const p = damaged('overlap.sif', (b) => {
      b.writeBigInt64LE(32770n, DESCRIPTORS + DESCRIPTOR + 17);
      return b;
    });
    await expectError(
      p,
      'SIF objects 1 (FS, bytes 32768-32772) and 2 (FS, bytes 32770-36866) overlap',
      'the file is damaged or was not written by a SIF tool; build or pull it again',
    );
  });

  it('an object over the descriptor table', async () => {
    const p = damaged('over-table.sif', (b) => {
      b.writeBigInt64LE(5000n, DESCRIPTORS + 17);
      return b;
    });
    await expectError(
      p,
      'SIF object 1 (FS, bytes 5000-5004) overlaps the header or descriptor table (bytes 0-32176)',
      'the file is damaged or was not written by a SIF tool; build or pull it again',
    );
  });

  it('an unknown type', async () => {
    const p = damaged('type.sif', (b) => {
      b.writeInt32LE(0x4099, DESCRIPTORS);
      return b;
    });
    await expectError(
      p,
      'SIF object 1 has unknown data type 0x4099',
      'the image was written by a newer SIF tool or is damaged; the known types are 0x4001 (Def.FILE) to 0x400b (OCI.Blob)',
    );
  });

  it('an image without a system partition, one whose partition holds no squashfs, an encrypted one', async () => {
    const exec = (path: string) => runCliInProcess(['exec', path, 'true']);
    const empty = join(TESTDATA, 'empty.sif');
    let r = await exec(empty);
    expect(r.stderr).toBe(`error: ${empty}: the SIF image has no system partition to run\n  hint: 'orchestrator sif list' shows what it holds\n`);
    expect(r.code).toBe(2);
    const noSquashfs = damaged('no-squashfs.sif', (b) => {
      b.write('XXXX', 36864, 'latin1');
      return b;
    });
    r = await exec(noSquashfs);
    expect(r.stderr).toBe(`error: ${noSquashfs}: SIF object 2 (FS, bytes 36864-40960) does not hold a squashfs file system\n  hint: the image is damaged; build or pull it again\n`);
    expect(r.code).toBe(2);
    const encrypted = damaged('encrypted.sif', (b) => {
      b.writeInt32LE(5, DESCRIPTORS + DESCRIPTOR + 73 + 128);
      return b;
    });
    r = await exec(encrypted);
    expect(r.stderr).toBe(
      `error: ${encrypted}: the root file system of this SIF image is encrypted (Encrypted squashfs, object 2)\n  hint: orchestrator cannot decrypt SIF partitions; decrypt it with apptainer (build a plain image from it) first\n`,
    );
    expect(r.code).toBe(2);
    const damagedMagic = damaged('magic-exec.sif', (b) => {
      b.writeInt32LE(0x4099, DESCRIPTORS);
      return b;
    });
    r = await exec(damagedMagic);
    expect(r.stderr).toContain('SIF object 1 has unknown data type 0x4099');
    expect(r.code).toBe(2);
  });

  it('an ext3 primary partition is checked as an ext3 file system that fits in its object', async () => {
    // two-groups.sif with the ext3 object (3, bytes 40960-303104) made the primary partition.
    const primaryExt3 = (b: Buffer): Buffer => {
      b.writeInt32LE(1, DESCRIPTORS + DESCRIPTOR + 73 + 128 + 4);
      b.writeInt32LE(2, DESCRIPTORS + 2 * DESCRIPTOR + 73 + 128 + 4);
      return b;
    };
    const copy = (name: string, damage: (b: Buffer) => Buffer): string => {
      const path = join(work, name);
      writeFileSync(path, damage(primaryExt3(readFileSync(join(TESTDATA, 'two-groups.sif')))));
      return path;
    };
    const good = copy('ext3.sif', (b) => b);
    let r = await runCliInProcess(['inspect', '--json', good]);
    expect(JSON.parse(r.stdout)).toEqual({ data: { attributes: { labels: null } }, type: 'container' });
    expect(r.code).toBe(0);
    const noExt3 = copy('no-ext3.sif', (b) => {
      b.writeUInt16LE(0, 40960 + 1024 + 56);
      return b;
    });
    r = await runCliInProcess(['inspect', noExt3]);
    expect(r.stderr).toBe(`error: ${noExt3}: SIF object 3 (FS, bytes 40960-303104) does not hold an ext3 file system\n  hint: the image is damaged; build or pull it again\n`);
    const tooBig = copy('big-ext3.sif', (b) => {
      b.writeUInt32LE(65, 40960 + 1024 + 4);
      return b;
    });
    r = await runCliInProcess(['inspect', tooBig]);
    expect(r.stderr).toBe(`error: ${tooBig}: the ext3 file system in SIF object 3 says 266240 bytes, the object holds 262144\n  hint: the image is damaged; build or pull it again\n`);
    expect(r.code).toBe(2);
  });
});
