import { describe, expect, it } from 'vitest';
import { fileSystemOffset } from '../../src/image/detect-image.js';
import { parseBindSpecs } from '../../src/runtime/bind-spec.js';
import { starterArgv } from '../../src/runtime/starter.js';

describe('starterArgv', () => {
  it('turns a plan into the documented vector', () => {
    expect(
      starterArgv({
        userns: true,
        pidns: false,
        ops: [
          { op: 'session', target: '/S', data: 'size=1m' },
          { op: 'image', type: 'squashfs', file: '/i.simg', offset: 31, target: '/S/image', writable: false },
          { op: 'overlay', target: '/S/root', lowers: ['/a', '/b'], upper: '/S/u', work: '/S/w' },
          { op: 'overlay', target: '/S/ro', lowers: ['/a'] },
          { op: 'bind', source: '/home/me', target: '/S/root/home/me', flags: ['mkpoint', 'ro'] },
          { op: 'bind', source: '/x', target: '/S/root/x', flags: [] },
          { op: 'chmod', path: '/S/u', mode: 0o555 },
          { op: 'pivot', newRoot: '/S/root' },
        ],
        cwd: ['/home/me', '/'],
        env: { PATH: '/bin', A: 'b=c' },
        noNewPrivs: true,
        command: ['/bin/sh', '-c', 'echo hi'],
        fallback: ['echo', 'hi'],
      }),
    ).toEqual([
      '--userns',
      '--session', '/S', 'size=1m',
      '--image', 'squashfs', '/i.simg', '31', '/S/image', 'ro',
      '--overlay', '/S/root', '/a:/b', '/S/u', '/S/w',
      '--overlay', '/S/ro', '/a', '-', '-',
      '--bind', '/home/me', '/S/root/home/me', 'mkpoint,ro',
      '--bind', '/x', '/S/root/x', '-',
      '--chmod', '/S/u', '555',
      '--pivot', '/S/root',
      '--cwd', '/home/me', '--cwd', '/',
      '--env', 'PATH=/bin', '--env', 'A=b=c',
      '--no-new-privs',
      '--fallback', '2', 'echo', 'hi',
      '--', '/bin/sh', '-c', 'echo hi',
    ]);
  });
});

describe('parseBindSpecs', () => {
  it('reads src[:dst[:ro|rw]] items and comma lists', () => {
    expect(parseBindSpecs('/a,data:/d:ro,/b:/e:rw', { cwd: '/work', origin: '--bind' })).toEqual({
      ok: true,
      value: [
        { source: '/a', target: '/a', readOnly: false },
        { source: '/work/data', target: '/d', readOnly: true },
        { source: '/b', target: '/e', readOnly: false },
      ],
    });
  });

  it('rejects bad options and relative destinations', () => {
    const bad = parseBindSpecs('/a:/b:rx', { cwd: '/', origin: 'SINGULARITY_BINDPATH' });
    expect(!bad.ok && bad.error.message).toBe("SINGULARITY_BINDPATH: invalid bind option 'rx' in '/a:/b:rx'");
    const rel = parseBindSpecs('/a:b', { cwd: '/', origin: '--bind' });
    expect(!rel.ok && rel.error.message).toBe("--bind: the destination of bind '/a:b' must be an absolute path");
  });
});

describe('fileSystemOffset', () => {
  it('skips the run-singularity line, and only that', () => {
    expect(fileSystemOffset(Buffer.from('#!/usr/bin/env run-singularity\nhsqs'))).toEqual({ offset: 31, header: true });
    expect(fileSystemOffset(Buffer.from('#!/bin/sh\necho'))).toEqual({ offset: 0, header: false });
    expect(fileSystemOffset(Buffer.from('hsqs'))).toEqual({ offset: 0, header: false });
  });
});
