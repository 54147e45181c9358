import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { runCli } from '../helpers/cli.js';
import { startRegistry } from '../helpers/registry.js';

let work: string;
const cli = (argv: string[]): ReturnType<typeof runCli> => runCli(argv, { cwd: work, env: { ...process.env, ORCHESTRATOR_CACHE: join(work, 'cache') } });

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orchestrator-build-from-'));
  chmodSync(work, 0o755);
  makeBusyboxTree(join(work, 'base'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('build --from', () => {
  it("builds a recipe on the given source instead of its header's, and the labels say so", async () => {
    writeFileSync(join(work, 'lib.def'), 'Bootstrap: library\nFrom: debian:9\n\n%post\n    echo from-post > /marker\n');
    const r = await cli(['build', '--sandbox', '--from', 'base', 'out', 'lib.def']);
    expect(r.code, r.stderr).toBe(0);
    const cat = await cli(['exec', 'out', 'cat', '/marker', '/etc/os-release']);
    expect(cat.stdout).toBe('from-post\nNAME="Busybox Test"\nID=busybox-test\n');
    const labels = (await cli(['inspect', 'out'])).stdout;
    expect(labels).toContain('org.label-schema.usage.singularity.deffile.bootstrap: localimage\n');
    expect(labels).toContain('org.label-schema.usage.singularity.deffile.from: base\n');
    expect(labels).toContain('org.label-schema.usage.singularity.deffile.header.bootstrap: library\n');
  });

  it("an unsupported header's hint names --from, not the manifest's from:", async () => {
    const r = await cli(['build', '--sandbox', 'out2', 'lib.def']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("or give --from REF, which takes the place of the header's source");
    expect(r.stderr).not.toContain('orchestrator.yaml');
  });

  it('a header source that cannot be pulled: the hint offers --from', async () => {
    const registry = await startRegistry();
    try {
      writeFileSync(join(work, 'down.def'), `Bootstrap: docker\nFrom: ${registry.host}/nothing/here:latest\n`);
      const r = await cli(['build', '--sandbox', 'out3', 'down.def']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/\n {2}hint: check the repository name and the tag; or build on another source with --from REF \(docker:\/\/, oci:, an image path\)\n$/);
      const direct = await cli(['build', '--sandbox', 'out3', `docker://${registry.host}/nothing/here:latest`]);
      expect(direct.code).toBe(1);
      expect(direct.stderr).toMatch(/\n {2}hint: check the repository name and the tag\n$/);
    } finally {
      await registry.stop();
    }
  });

  it('bad --from values and combinations are one usage error, nothing written', async () => {
    const bad = await cli(['build', '--sandbox', '--from', 'target:x', 'out4', 'lib.def']);
    expect([bad.code, bad.stderr]).toEqual([2, "error: --from 'target:x' is not a source\n  hint: give docker://REF, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, or the path of an image or sandbox\n"]);
    const notRecipe = await cli(['build', '--sandbox', '--from', 'base', 'out4', 'base']);
    expect([notRecipe.code, notRecipe.stderr]).toEqual([2, "error: --from replaces a recipe's source, and base is not a recipe\n  hint: build base directly: orchestrator build out4 base\n"]);
    expect(existsSync(join(work, 'out4'))).toBe(false);
  });
});
