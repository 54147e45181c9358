import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unpackLayer } from '../../src/layers/unpack-layer.js';
import { runInLayerStack } from '../../src/layers/mount-layers.js';
import { pullImage } from '../../src/registry/pull-image.js';
import { parseReference } from '../../src/registry/reference.js';
import { RegistryClient } from '../../src/registry/registry-client.js';
import { Store } from '../../src/store/store.js';
import { pushImage, threeLayerImage, THREE_LAYER_RESULT } from '../helpers/images.js';
import { applyWhiteouts, DESCRIBE, parseDescription } from '../helpers/overlay-reference.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

/**
 * The registry issue's three-layer image (a whiteout, an opaque folder, a replaced file), pulled
 * from a real registry and unpacked: its merged overlay view equals GNU tar's result.
 */
let registry: TestRegistry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = mkdtempSync(join(tmpdir(), 'orch-reg-unpack-'));
});
afterAll(async () => {
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('a pulled three-layer image', () => {
  it('unpacks into a stack whose merged view is what GNU tar gives', async () => {
    const client = new RegistryClient({});
    const ref = parseReference(`${registry.host}/test/three:1`);
    if (!ref.ok) throw new Error(ref.error.message);
    const image = await threeLayerImage();
    await pushImage(ref.value, image);
    const store = await Store.open({ dir: join(work, 'cache') });
    const pulled = await pullImage(ref.value, { store, client });
    await client.close();
    if (!pulled.ok) throw new Error(pulled.error.message);

    const lowers: string[] = [];
    const ref0 = join(work, 'reference');
    mkdirSync(ref0);
    for (const layer of pulled.value.layers) {
      const r = await unpackLayer({
        source: store.blobPath(layer.digest),
        mediaType: layer.mediaType,
        expectedDiffId: layer.diffId,
        destination: store.layerPath(layer.diffId),
        tmpDir: store.tmpDir,
      });
      if (!r.ok) throw new Error(r.error.message);
      lowers.unshift(r.value.path);
      const names = execFileSync('tar', ['-tzf', store.blobPath(layer.digest)], { encoding: 'utf8' }).split('\n').filter(Boolean).map((name) => ({ name }));
      applyWhiteouts(ref0, names);
      execFileSync('tar', ['-x', '-z', '-p', '--numeric-owner', '--same-owner', '--exclude=.wh.*', '-C', ref0, '-f', store.blobPath(layer.digest)]);
    }
    const expected = parseDescription(execFileSync('sh', ['-c', DESCRIBE, 'sh', ref0]).toString());
    const target = join(work, 'merged');
    mkdirSync(target);
    const merged = await runInLayerStack({ lowers, target, command: ['sh', '-c', DESCRIBE, 'sh', target] });
    if (!merged.ok) throw new Error(merged.error.message);
    expect(parseDescription(merged.value.stdout.toString())).toEqual(expected);
    // Not vacuous: the deletions happened, and the files are the ones the image should have.
    const files = Object.keys(expected).filter((p) => expected[p]!.startsWith('f ')).map((p) => p.slice(2)).sort();
    expect(files).toEqual(Object.keys(THREE_LAYER_RESULT).sort());
  });
});
