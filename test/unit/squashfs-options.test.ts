import { describe, expect, it } from 'vitest';
import { parseSquashfsProgress } from '../../src/image/export-squashfs.js';
import { squashfsWriterArgv } from '../../src/image/squashfs-writer.js';
import { DEFAULT_SQUASHFS_OPTIONS, resolveSquashfsOptions } from '../../src/manifest/squashfs-options.js';
import { exportProgressText, exportReuseText } from '../../src/report/export-progress.js';

describe('resolveSquashfsOptions', () => {
  it('fills in the defaults: our writer, gzip level 9, 128 KiB blocks', () => {
    expect(DEFAULT_SQUASHFS_OPTIONS).toEqual({ writer: 'orchestrator', compression: 'gzip', level: 9, blockSize: 131072 });
    expect(resolveSquashfsOptions({ compression: 'zstd' }).options).toEqual({ writer: 'orchestrator', compression: 'zstd', level: 15, blockSize: 131072 });
    expect(resolveSquashfsOptions({ compression: 'lz4' }).options).toEqual({ writer: 'orchestrator', compression: 'lz4', level: 0, blockSize: 131072 });
    expect(resolveSquashfsOptions({ writer: 'mksquashfs', compression: 'xz' }).options).toEqual({ writer: 'mksquashfs', compression: 'xz', blockSize: 131072 });
    expect(resolveSquashfsOptions({ writer: 'mksquashfs', compression: 'lzo', level: 9, blockSize: 1048576 }).options).toEqual({
      writer: 'mksquashfs',
      compression: 'lzo',
      level: 9,
      blockSize: 1048576,
    });
  });

  it.each([
    [{ compression: 'gzip', level: 0 }, 'level', 'compression level 0 is out of range for gzip', 'use a whole number from 1 to 9'],
    [{ compression: 'xz', level: 10 }, 'level', 'compression level 10 is out of range for xz', 'use a whole number from 0 to 9'],
    [{ compression: 'zstd', level: 23 }, 'level', 'compression level 23 is out of range for zstd', 'use a whole number from 1 to 22'],
    [{ compression: 'lz4', level: 13 }, 'level', 'compression level 13 is out of range for lz4', 'use a whole number from 0 to 12'],
    [{ writer: 'mksquashfs', compression: 'lz4', level: 1 }, 'level', 'mksquashfs takes no compression level for lz4', "remove 'level', or use the orchestrator writer (it has levels for every compressor)"],
    [{ compression: 'lzo' }, 'compression', 'the orchestrator squashfs writer has no lzo compressor', "use gzip, xz, zstd or lz4, or 'writer: mksquashfs'"],
    [{ blockSize: 2048 }, 'block_size', 'block size 2048 is not a power of two from 4 KiB to 1 MiB', 'use 4KiB, 8KiB, ... 128KiB (the default), 256KiB, 512KiB or 1MiB'],
    [{ blockSize: 2097152 }, 'block_size', 'block size 2097152 is not a power of two from 4 KiB to 1 MiB', 'use 4KiB, 8KiB, ... 128KiB (the default), 256KiB, 512KiB or 1MiB'],
    [{ blockSize: 196608 }, 'block_size', 'block size 196608 is not a power of two from 4 KiB to 1 MiB', 'use 4KiB, 8KiB, ... 128KiB (the default), 256KiB, 512KiB or 1MiB'],
    [{ writer: 'squashfs-tools' }, 'writer', "squashfs writer 'squashfs-tools' is not one of orchestrator, mksquashfs", "use 'orchestrator' (the default) or 'mksquashfs'"],
  ] as const)('refuses %o: %s', (input, field, message, hint) => {
    expect(resolveSquashfsOptions(input)).toEqual({ problems: [{ field, message, hint }] });
  });
});

describe("the writer's argument vector and progress lines", () => {
  it('passes every option as its own element', () => {
    expect(squashfsWriterArgv({ source: '/s', output: '/o', offset: 31, compression: 'zstd', level: 19, blockSize: 65536, clamp: 5, blockCache: '/c', progressFd: 1 })).toEqual([
      '/s', '/o', '--offset', '31', '--comp', 'zstd', '--level', '19', '--block-size', '65536', '--clamp', '5', '--block-cache', '/c', '--progress-fd', '1',
    ]);
  });

  it('reads a progress line, also after a warning in the same line, and nothing else', () => {
    const line = '{"phase":"data","files":1,"filesTotal":2,"bytes":10,"bytesTotal":20,"compressed":4,"reused":6}';
    const p = { phase: 'data', files: 1, filesTotal: 2, bytes: 10, bytesTotal: 20, compressed: 4, reused: 6 };
    expect(parseSquashfsProgress(line)).toEqual(p);
    expect(parseSquashfsProgress(`orchestrator-mksquashfs: warning: x${line}`)).toEqual(p);
    expect(parseSquashfsProgress('orchestrator-mksquashfs: error: write x: No space left on device')).toBeUndefined();
    expect(parseSquashfsProgress('{"phase":"later"}')).toBeUndefined();
    expect(parseSquashfsProgress('{"phase":"data",')).toBeUndefined();
  });
});

describe('export progress on the terminal', () => {
  const base = { type: 'export-progress', target: 'app', files: 120, filesTotal: 900, bytes: 550_000_000, bytesTotal: 1_288_490_189, compressedBytes: 31_457_280, reusedBytes: 536_870_912 } as const;
  it('says how far the export is, and what was compressed and reused', () => {
    expect(exportProgressText({ ...base, phase: 'data' })).toBe('exporting: 42% of 1.20 GiB, 120/900 files (30.0 MiB compressed, 512 MiB reused)');
    expect(exportProgressText({ ...base, phase: 'scan' })).toBe('exporting: reading the tree (listing)');
    expect(exportProgressText({ ...base, phase: 'hash' })).toBe('exporting: reading the tree (120/900 files)');
    expect(exportProgressText({ ...base, phase: 'tables' })).toBe('exporting: writing the tables');
    expect(exportReuseText({ type: 'export-done', target: 'app', ms: 5, squashfs: { compressedBytes: 0, reusedBytes: 1024 } })).toBe(' (0 B compressed, 1.00 KiB reused from the block cache)');
    expect(exportReuseText({ type: 'export-done', target: 'app', ms: 5 })).toBe('');
  });
});
