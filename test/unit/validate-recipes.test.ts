import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Rig } from '../helpers/rig.js';

let rig: Rig;
beforeEach(async () => {
  rig = await Rig.create();
});
afterEach(() => rig.cleanup());

const manifest = (extra = '') => `version: 1
args:
  GREETING: hello
targets:
  app:
    recipe: recipes/app.def
    format: squashfs
${extra}`;

describe('validate: recipes', () => {
  it('reports recipe errors with their file, line and column, and exits 2', async () => {
    rig.write({
      'orchestrator.yaml': manifest(),
      'recipes/app.def': 'Bootstrap: docker\nFrom: debian:bookworm\n\n%post\n  echo {{ GREETING }}\n%label\n  a b\n%runscript\n  echo {{ NAME }}\n',
    });
    const r = await rig.cli(['validate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      [
        'recipes/app.def:6:1: error: %label is not a section',
        '  %label',
        '  ^~~~~~',
        "  hint: did you mean '%labels'?",
        '1 error',
        '',
      ].join('\n'),
    );
  });

  it('reports an undefined build argument once the syntax is right', async () => {
    rig.write({
      'orchestrator.yaml': manifest(),
      'recipes/app.def': 'Bootstrap: docker\nFrom: debian:bookworm\n%runscript\n  echo {{ GREETING }} {{ NAME }}\n',
    });
    const r = await rig.cli(['validate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("recipes/app.def:4:23: error: build argument 'NAME' is not defined");
  });

  it('refuses an unsupported agent only when no from: replaces it', async () => {
    rig.write({ 'orchestrator.yaml': manifest(), 'recipes/app.def': 'Bootstrap: shub\nFrom: vsoch/hello\n%runscript\n  echo\n' });
    const r = await rig.cli(['validate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("recipes/app.def:1:12: error: bootstrap agent 'shub' is not supported yet");
    rig.write({ 'orchestrator.yaml': manifest('    from: docker://debian:bookworm\n') });
    expect((await rig.cli(['validate'])).code).toBe(0);
  });

  it('checks debootstrap header values without building', async () => {
    rig.write({ 'orchestrator.yaml': manifest(), 'recipes/app.def': 'Bootstrap: debootstrap\nOSVersion: book worm\n%runscript\n  echo\n' });
    const r = await rig.cli(['validate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("recipes/app.def:2:12: error: 'book worm' is not a suite name");
  });

  it('needs a source from the recipe or the manifest', async () => {
    rig.write({ 'orchestrator.yaml': manifest(), 'recipes/app.def': '%runscript\n  echo hi\n' });
    const r = await rig.cli(['validate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error: target 'app' has no source: its recipe has no 'Bootstrap:' header and the target no 'from:'");
  });
});
