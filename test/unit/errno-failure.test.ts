import { describe, expect, it } from 'vitest';
import { errnoDiagnostic, fileSystemOf, formatBytes, withFileSystemCause } from '../../src/core/errno-failure.js';
import { error } from '../../src/core/diagnostic.js';

const sysError = (code: string, syscall: string, path: string, dest?: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path, ...(dest ? { dest } : {}) });

describe('errnoDiagnostic', () => {
  it('is undefined for what is not a system error: a bug stays a bug', () => {
    expect(errnoDiagnostic(new TypeError('x'), { target: 'app' })).toBeUndefined();
    expect(errnoDiagnostic('text', { target: 'app' })).toBeUndefined();
    expect(errnoDiagnostic(Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' }), { target: 'app' })).toBeUndefined();
  });

  it('ENOSPC names the path and the file system with its free space', () => {
    const fs = fileSystemOf('/')!;
    const d = errnoDiagnostic(sysError('ENOSPC', 'write', '/no/such/file'), { target: 'app', step: '%post' })!;
    expect(d.reason).toBe('no-space');
    // Free space moves as others write: only its shape is checked.
    expect(d.message.replace(/has [\d.]+ [KMGT]?i?B free/, 'has N free')).toBe(`app (%post): ENOSPC, no space left on device, writing /no/such/file (write): the file system at / (${fs.type}) has N free of ${formatBytes(fs.totalBytes)}`);
    expect(d.hint).toBe('free space on /, or point the output (or the cache) at a file system with room');
  });

  it('EACCES and EPERM say the path is not writable; a rename names its destination', () => {
    const d = errnoDiagnostic(sysError('EACCES', 'rename', '/a/from', '/b/to'), { target: 'app' })!;
    expect(d.reason).toBe('not-writable');
    expect(d.message).toBe('app: EACCES, permission denied /b/to (rename): the path is not writable by this user (or is immutable)');
    expect(errnoDiagnostic(sysError('EPERM', 'open', '/x'), { target: 'app' })!.reason).toBe('not-writable');
  });

  it('any other errno is the system refusing, with its own message', () => {
    const d = errnoDiagnostic(sysError('EXDEV', 'rename', '/a', '/b'), { target: 'app' })!;
    expect(d.reason).toBe('system-error');
    expect(d.message).toBe("app: EXDEV /b (rename): EXDEV: rename '/a'");
  });
});

describe('withFileSystemCause', () => {
  it('adds the file system to a tool failure that says the disk is full, and leaves others alone', () => {
    const full = error('tool-failed', 'mksquashfs exited with status 1\nWrite failed because No space left on device');
    const d = withFileSystemCause(full, '/tmp/x.simg');
    const fs = fileSystemOf('/tmp/x.simg')!;
    expect(d.message.replace(/has [\d.]+ [KMGT]?i?B free/, 'has N free')).toBe(`${full.message}\nENOSPC: the file system at ${fs.mountPoint} (${fs.type}) holding /tmp/x.simg has N free of ${formatBytes(fs.totalBytes)}`);
    const other = error('tool-failed', 'mksquashfs exited with status 1\nbad option');
    expect(withFileSystemCause(other, '/tmp/x.simg')).toBe(other);
  });
});
