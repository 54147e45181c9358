import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { holdWritableLock, writableLockPath, writableSessionHolder } from '../../src/runtime/writable-lock.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'orchestrator-wlock-unit-'));
  mkdirSync(join(dir, 'dev'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('writable-session lock', () => {
  it('lives beside the image, outside its tree', () => {
    expect(writableLockPath(join(dir, 'dev'))).toBe(join(dir, '.dev.orchestrator-writable'));
    expect(writableLockPath(join(dir, 'dev') + '/')).toBe(join(dir, '.dev.orchestrator-writable'));
  });

  it('names its holder while held, nobody before or after', () => {
    const image = join(dir, 'dev');
    expect(writableSessionHolder(image)).toBeUndefined();
    const a = holdWritableLock(image, 'shell')!;
    const b = holdWritableLock(image, 'exec')!;
    expect(writableSessionHolder(image)).toEqual({ pid: process.pid, action: 'exec' });
    b.release();
    expect(writableSessionHolder(image)).toEqual({ pid: process.pid, action: 'exec' });
    a.release();
    expect(writableSessionHolder(image)).toBeUndefined();
    expect(readdirSync(join(dir, 'dev'))).toEqual([]);
  });

  it('never follows a symlink planted at the lock name', () => {
    const image = join(dir, 'dev');
    const elsewhere = join(dir, 'elsewhere');
    symlinkSync(elsewhere, writableLockPath(image));
    expect(holdWritableLock(image, 'shell')).toBeUndefined();
    expect(writableSessionHolder(image)).toBeUndefined();
    expect(readdirSync(dir).sort()).toEqual(['.dev.orchestrator-writable', 'dev']);
  });
});
