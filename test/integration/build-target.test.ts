import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildEvent } from '../../src/builder/build-events.js';
import { buildTarget, type BuildTargetRequest } from '../../src/builder/build-target.js';
import { error } from '../../src/core/diagnostic.js';
import { fail, ok } from '../../src/core/result.js';
import { parseRecipe } from '../../src/recipe/parse-recipe.js';
import { resolveRecipe } from '../../src/recipe/resolve-recipe.js';
import { Store } from '../../src/store/store.js';
import { makeBusyboxTree } from '../helpers/busybox-image.js';

let work: string;
let store: Store;
let base: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'orch-build-'));
  store = await Store.open({ dir: join(work, 'cache') });
  base = join(work, 'base');
  mkdirSync(base);
  makeBusyboxTree(base);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

function recipeText(opts: { runscript?: string; post?: string; test?: string } = {}) {
  return [
    'Bootstrap: localimage',
    'From: ../base',
    '',
    '%setup',
    `  echo setup >> ${join(work, 'setup-runs')}`,
    '  mkdir -p $SINGULARITY_ROOTFS/opt/app',
    '%files',
    '  data/greeting.txt /opt/app/',
    '  data/greeting.txt /bin/greeting-via-bin-link',
    '%environment',
    '  export GREETING_FILE=/opt/app/greeting.txt',
    '%post',
    `  ${opts.post ?? 'echo "post-run-$$-$(cat /proc/sys/kernel/random/uuid 2>/dev/null)" > /post-marker'}`,
    '  rm /root-only.txt',
    '  echo "export FROM_POST=yes" >> $SINGULARITY_ENVIRONMENT',
    '%runscript',
    `  ${opts.runscript ?? 'cat $GREETING_FILE'}`,
    '%test',
    `  ${opts.test ?? 'test -f /opt/app/greeting.txt'}`,
    '%labels',
    '  Maintainer tests',
  ].join('\n');
}

async function build(text: string, over: Partial<BuildTargetRequest> = {}) {
  const dir = join(work, 'project');
  mkdirSync(join(dir, 'data'), { recursive: true });
  if (!existsSync(join(dir, 'data/greeting.txt'))) writeFileSync(join(dir, 'data/greeting.txt'), 'hello from files\n');
  writeFileSync(join(dir, 'app.def'), text);
  const parsed = parseRecipe(text, { file: 'app.def' });
  expect(parsed.diagnostics).toEqual([]);
  const recipe = resolveRecipe(parsed.recipe, { args: {} }).recipe;
  const events: BuildEvent[] = [];
  const r = await buildTarget(
    { name: 'app', recipe, recipeDir: dir, format: 'squashfs', output: join(dir, 'app.simg'), runTest: true, noCache: false, ...over },
    {
      store,
      logDir: join(dir, '.orchestrator/logs/app'),
      toolVersion: 'test',
      resolveHeader: async (stage, recipeDir) =>
        stage.bootstrap === 'localimage' ? ok({ kind: 'local', path: join(recipeDir, stage.header.get('from')!.value) }) : fail(error('recipe-agent-unsupported', 'only localimage here')),
      onEvent: (e) => events.push(e),
      signal: new AbortController().signal,
    },
  );
  return { r, events, dir };
}

/** Reads a file of a squashfs image (with the 31-byte header). */
function readInImage(image: string, path: string): string {
  const x = mkdtempSync(join(work, 'x-'));
  try {
    execFileSync('unsquashfs', ['-q', '-n', '-o', '31', '-f', '-d', x, image, path], { stdio: 'ignore' });
    return readFileSync(join(x, path), 'utf8');
  } finally {
    rmSync(x, { recursive: true, force: true });
  }
}

function existsInImage(image: string, path: string): boolean {
  const out = execFileSync('unsquashfs', ['-l', '-o', '31', image], { encoding: 'utf8' });
  return out.split('\n').some((l) => l === `squashfs-root/${path}`);
}

describe('buildTarget', () => {
  it('builds a recipe into a squashfs image with every step and the Singularity layout', async () => {
    const { r, dir } = await build(recipeText());
    expect(r.ok ? r.value.steps.map((s) => `${s.label.kind}:${s.cached}`) : r.error.message).toEqual([
      'source:true', 'setup:false', 'files:false', 'post:false', 'metadata:false',
    ]);
    const img = join(dir, 'app.simg');
    expect(readFileSync(img).subarray(0, 31).toString()).toBe('#!/usr/bin/env run-singularity\n');
    expect(readInImage(img, 'opt/app/greeting.txt')).toBe('hello from files\n');
    // /bin is a real folder in this image; the copy went through the image's own paths.
    expect(readInImage(img, 'bin/greeting-via-bin-link')).toBe('hello from files\n');
    expect(readInImage(img, '.singularity.d/runscript')).toBe('#!/bin/sh\n\n  cat $GREETING_FILE\n');
    expect(readInImage(img, '.singularity.d/env/91-environment.sh')).toBe('export FROM_POST=yes\n');
    expect(JSON.parse(readInImage(img, '.singularity.d/labels.json'))).toMatchObject({ Maintainer: 'tests' });
    expect(readInImage(img, '.singularity.d/Singularity')).toBe(recipeText());
    // Deleted in %post: absent from the image. The step script never stays in it.
    expect(existsInImage(img, 'root-only.txt')).toBe(false);
    expect(existsInImage(img, '.orchestrator-step.sh')).toBe(false);
    expect(existsInImage(img, 'bin/busybox')).toBe(true);
    expect(readdirSync(store.tmpDir)).toEqual([]);
  });

  it('reruns no %post when only %runscript changes, and the image changes', async () => {
    const first = await build(recipeText());
    const img = join(first.dir, 'app.simg');
    const marker = readInImage(img, 'post-marker');
    const before = sha(img);
    const setupRuns = readFileSync(join(work, 'setup-runs'), 'utf8');
    const { r } = await build(recipeText({ runscript: 'echo changed' }));
    expect(r.ok && r.value.steps.map((s) => `${s.label.kind}:${s.cached}`)).toEqual([
      'source:true', 'setup:true', 'files:true', 'post:true', 'metadata:false',
    ]);
    expect(readInImage(img, 'post-marker')).toBe(marker);
    expect(readFileSync(join(work, 'setup-runs'), 'utf8')).toBe(setupRuns);
    expect(readInImage(img, '.singularity.d/runscript')).toContain('echo changed');
    expect(sha(img)).not.toBe(before);
  });

  it('reruns %files and what follows when a %files source changes', async () => {
    await build(recipeText());
    writeFileSync(join(work, 'project/data/greeting.txt'), 'changed greeting\n');
    const { r, dir } = await build(recipeText());
    expect(r.ok && r.value.steps.map((s) => `${s.label.kind}:${s.cached}`)).toEqual([
      'source:true', 'setup:true', 'files:false', 'post:false', 'metadata:false',
    ]);
    expect(readInImage(join(dir, 'app.simg'), 'opt/app/greeting.txt')).toBe('changed greeting\n');
    writeFileSync(join(work, 'project/data/greeting.txt'), 'hello from files\n');
  });

  it('gives byte-identical images for the same key', async () => {
    const a = await build(recipeText());
    const first = sha(join(a.dir, 'app.simg'));
    rmSync(join(a.dir, 'app.simg'));
    await build(recipeText());
    expect(sha(join(a.dir, 'app.simg'))).toBe(first);
  });

  it('fails on a %post error with its line and output, keeping the previous image', async () => {
    const ok1 = await build(recipeText());
    const img = join(ok1.dir, 'app.simg');
    const before = sha(img);
    const { r } = await build(recipeText({ post: 'echo about to fail; exit 3' }));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.reason).toBe('step-failed');
      expect(r.error.message).toMatch(/^%post failed with exit status 3; its last lines:\n/);
      expect(r.error.message).toContain('about to fail');
      expect(r.error.location).toMatchObject({ file: 'app.def', line: 12 });
    }
    expect(sha(img)).toBe(before);
    expect(readdirSync(store.tmpDir)).toEqual([]);
  });

  it('fails when %test fails, keeping the previous image', async () => {
    const ok1 = await build(recipeText());
    const img = join(ok1.dir, 'app.simg');
    const before = sha(img);
    const { r } = await build(recipeText({ test: 'echo test says no; exit 4' }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/^%test failed with exit status 4/);
    expect(sha(img)).toBe(before);
  });

  it('exports sandbox and ext3 from the same cached steps', async () => {
    const s = await build(recipeText(), { format: 'sandbox', output: join(work, 'project/app-sandbox') });
    expect(s.r.ok && s.r.value.steps.every((x) => x.cached)).toBe(true);
    expect(readFileSync(join(work, 'project/app-sandbox/opt/app/greeting.txt'), 'utf8')).toBe('hello from files\n');
    expect(existsSync(join(work, 'project/app-sandbox/root-only.txt'))).toBe(false);
    const e = await build(recipeText(), { format: 'ext3', output: join(work, 'project/app.img') });
    expect(e.r.ok).toBe(true);
    expect(readFileSync(join(work, 'project/app.img')).readUInt16LE(31 + 1024 + 56)).toBe(0xef53);
  });
});
