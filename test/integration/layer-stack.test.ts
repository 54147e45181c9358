import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayerStack } from '../../src/builder/layer-stack.js';

/**
 * LayerStack must see what the kernel's overlayfs shows for the same stack: checked path by path
 * against a real read-only overlay mount of the same folders.
 */
let work: string;
let layers: string[];
let mnt = '';

const whiteout = (p: string) => execFileSync('mknod', [p, 'c', '0', '0']);

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orch-stack-'));
  const [l0, l1, l2] = ['top', 'mid', 'bottom'].map((n) => join(work, n));
  layers = [l0!, l1!, l2!];
  for (const l of layers) mkdirSync(l);
  // bottom
  mkdirSync(join(l2!, 'etc/conf.d'), { recursive: true });
  mkdirSync(join(l2!, 'usr/bin'), { recursive: true });
  mkdirSync(join(l2!, 'opt/old'), { recursive: true });
  writeFileSync(join(l2!, 'etc/conf.d/a'), 'a');
  writeFileSync(join(l2!, 'etc/conf.d/b'), 'b');
  writeFileSync(join(l2!, 'usr/bin/tool'), 'tool');
  writeFileSync(join(l2!, 'opt/old/file'), 'old');
  writeFileSync(join(l2!, 'gone'), 'gone');
  symlinkSync('usr/bin', join(l2!, 'bin'));
  // mid: delete etc/conf.d/a and /gone; make /opt opaque with new content
  mkdirSync(join(l1!, 'etc/conf.d'), { recursive: true });
  whiteout(join(l1!, 'etc/conf.d/a'));
  whiteout(join(l1!, 'gone'));
  mkdirSync(join(l1!, 'opt/new'), { recursive: true });
  execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(l1!, 'opt')]);
  symlinkSync('/usr/bin/tool', join(l1!, 'abs-link'));
  symlinkSync('../../../../usr/bin/tool', join(l1!, 'climb'));
  // top: re-create gone as a folder, a relative link into a folder link
  mkdirSync(join(l0!, 'gone'));
  symlinkSync('bin/tool', join(l0!, 'via-bin'));
  symlinkSync('loop2', join(l0!, 'loop1'));
  symlinkSync('loop1', join(l0!, 'loop2'));
  const target = join(work, 'mnt');
  mkdirSync(target);
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${layers.join(':')}`, target]);
  mnt = target;
});

afterAll(() => {
  if (mnt) execFileSync('umount', [mnt]);
  rmSync(work, { recursive: true, force: true });
});

const kernel = (rel: string) => {
  try {
    const st = lstatSync(join(mnt, rel));
    return st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : st.isFile() ? 'file' : 'other';
  } catch {
    return 'absent';
  }
};

describe('LayerStack', () => {
  const paths = [
    'etc', 'etc/conf.d', 'etc/conf.d/a', 'etc/conf.d/b', 'usr/bin/tool', 'opt', 'opt/old', 'opt/old/file',
    'opt/new', 'gone', 'bin', 'abs-link', 'via-bin', 'nothing', 'etc/conf.d/a/x',
  ];
  for (const rel of paths) {
    it(`sees '${rel}' as the kernel does`, async () => {
      const e = await new LayerStack(layers).entry(rel);
      const ours = !e ? 'absent' : e.stats.isDirectory() ? 'dir' : e.stats.isSymbolicLink() ? 'link' : e.stats.isFile() ? 'file' : 'other';
      expect(ours).toBe(kernel(rel));
    });
  }

  for (const dir of ['', 'etc', 'etc/conf.d', 'opt', 'data-none', 'gone', 'usr/bin']) {
    it(`lists '${dir || '/'}' as the kernel does`, async () => {
      let kernelNames: string[];
      try {
        kernelNames = readdirSync(join(mnt, dir)).sort();
      } catch {
        kernelNames = [];
      }
      expect(await new LayerStack(layers).list(dir)).toEqual(kernelNames);
    });
  }

  it('resolves symlinks inside the image, never outside it', async () => {
    const stack = new LayerStack(layers);
    expect(await stack.resolve('/bin/tool')).toBe('usr/bin/tool');
    expect(await stack.resolve('/abs-link')).toBe('usr/bin/tool');
    expect(await stack.resolve('/climb')).toBe('usr/bin/tool');
    expect(await stack.resolve('/via-bin')).toBe('usr/bin/tool');
    expect(await stack.resolve('/bin/new-file')).toBe('usr/bin/new-file');
    expect(await stack.resolve('/bin', false)).toBe('bin');
    expect(await stack.resolve('/loop1')).toBeNull();
  });
});
