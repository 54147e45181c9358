import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReference } from '../../src/registry/reference.js';
import { runCli } from '../helpers/cli.js';
import { buildImage, busyboxLayer, pushImage, tarLayer } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

/** Registry tags in a project: pinned in orchestrator.lock by the first build, moved only on request. */
let registry: TestRegistry;
let work: string;
let env: NodeJS.ProcessEnv;

async function push(extra: string): Promise<string> {
  const r = parseReference(`${registry.host}/test/base:1`);
  if (!r.ok) throw new Error(r.error.message);
  const image = buildImage([await busyboxLayer(), await tarLayer([{ name: 'version.txt', content: `${extra}\n` }])]);
  return pushImage(r.value, image);
}

beforeAll(async () => {
  registry = await startRegistry();
  work = mkdtempSync(join(tmpdir(), 'orch-up-reg-'));
  env = { ...process.env, ORCHESTRATOR_CACHE: join(work, 'cache') };
  delete env['CI'];
  writeFileSync(
    join(work, 'orchestrator.yaml'),
    `version: 1\ntargets:\n  app:\n    from: docker://${registry.host}/test/base:1\n    recipe: app.def\n    format: squashfs\n`,
  );
  writeFileSync(join(work, 'app.def'), '%runscript\n    cat /version.txt\n');
});
afterAll(async () => {
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli(args, { cwd: work, env });
const lockFile = () => JSON.parse(readFileSync(join(work, 'orchestrator.lock'), 'utf8')) as { images: Record<string, { digest: string; platforms: Record<string, string> }> };

describe('up with registry sources', () => {
  it('pins the tag on the first build, keeps it when the tag moves, and moves with --pull', async () => {
    const first = await push('one');
    const built = await cli(['up', '--progress', 'plain']);
    expect(built.code).toBe(0);
    const key = `docker://${registry.host}/test/base:1`;
    expect(lockFile().images[key]!.platforms['linux/amd64']).toBe(first);
    expect((await cli(['run', 'build/app.simg'])).stdout).toBe('one\n');

    const second = await push('two');
    const again = await cli(['up', '--progress', 'plain']);
    expect(again.stdout).toMatch(/built 0, fresh 1/);
    expect(lockFile().images[key]!.platforms['linux/amd64']).toBe(first);

    const pulled = await cli(['up', '--pull', '--progress', 'plain']);
    expect(pulled.code).toBe(0);
    expect(pulled.stdout).toContain('app: stale: tags re-resolved (--pull)');
    expect(lockFile().images[key]!.platforms['linux/amd64']).toBe(second);
    expect((await cli(['run', 'build/app.simg'])).stdout).toBe('two\n');
    expect((await cli(['up', '--progress', 'plain'])).stdout).toMatch(/built 0, fresh 1/);
  });

  it('lock pins and --update re-resolves; plan says when the base moved', async () => {
    const before = lockFile().images[`docker://${registry.host}/test/base:1`]!.platforms['linux/amd64']!;
    const key = `docker://${registry.host}/test/base:1`;
    const same = await cli(['lock']);
    expect(same.stdout).toBe(`${key}: ${before} (pinned)\n`);
    const third = await push('three');
    const updated = await cli(['lock', '--update']);
    expect(updated.code).toBe(0);
    expect(updated.stdout).toBe(`${key}: ${third} (was ${before})\n`);
    const plan = await cli(['plan']);
    expect(plan.stdout).toContain(`why:     base ${key} moved to ${third.slice(0, 19)}`);
    const up = await cli(['up', '--progress', 'plain']);
    expect(up.stdout).toContain(`app: stale: base ${key} moved to ${third.slice(0, 19)}`);
    expect((await cli(['run', 'build/app.simg'])).stdout).toBe('three\n');
  });
});
