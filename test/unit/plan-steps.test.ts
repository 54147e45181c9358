import { describe, expect, it } from 'vitest';
import { hostFileInputs, planSteps, type PlanStepsInput } from '../../src/builder/plan-steps.js';
import { parseRecipe } from '../../src/recipe/parse-recipe.js';

const RECIPE = [
  'Bootstrap: docker',
  'From: debian:bookworm',
  '%setup',
  '  mkdir -p $SINGULARITY_ROOTFS/opt',
  '%files',
  '  data.txt /opt/data.txt',
  '%post',
  '  apt-get install -y hello',
  '%runscript',
  '  hello',
  '%appinstall tool',
  '  echo install',
].join('\n');

function plan(text: string, over: Partial<PlanStepsInput> = {}) {
  const stage = parseRecipe(text, { file: 'r.def' }).recipe.stages[0]!;
  return planSteps({
    stage,
    source: { digest: 'sha256:aaaa' },
    platform: 'linux/amd64',
    buildArgs: {},
    inputDigests: { 'data.txt': 'sha256:1111' },
    stageKeys: {},
    metadataSalt: { recipe: text },
    ...over,
  });
}

describe('planSteps', () => {
  it('orders the steps as Singularity builds', () => {
    expect(plan(RECIPE).map((s) => `${s.kind}${s.app ? `:${s.app}` : ''}`)).toEqual([
      'source',
      'setup',
      'files',
      'post',
      'appinstall:tool',
      'metadata',
    ]);
    expect(hostFileInputs(parseRecipe(RECIPE, { file: 'r.def' }).recipe.stages[0]!)).toEqual(['data.txt']);
  });

  it('changes only the metadata key when only %runscript changes', () => {
    const a = plan(RECIPE);
    const b = plan(RECIPE.replace('  hello', '  hello --greeting hi'));
    expect(a.slice(0, -1).map((s) => s.key)).toEqual(b.slice(0, -1).map((s) => s.key));
    expect(a.at(-1)!.key).not.toBe(b.at(-1)!.key);
  });

  it('reruns %post and what follows when %post changes, nothing before', () => {
    const a = plan(RECIPE);
    const b = plan(RECIPE.replace('install -y hello', 'install -y cowsay'));
    const changed = a.map((s, i) => s.key !== b[i]!.key);
    expect(changed).toEqual([false, false, false, true, true, true]);
  });

  it('reruns %files and what follows when a %files source changes', () => {
    const a = plan(RECIPE);
    const b = plan(RECIPE, { inputDigests: { 'data.txt': 'sha256:2222' } });
    expect(a.map((s, i) => s.key !== b[i]!.key)).toEqual([false, false, true, true, true, true]);
  });

  it('changes everything when the base image moves', () => {
    const a = plan(RECIPE);
    const b = plan(RECIPE, { source: { digest: 'sha256:bbbb' } });
    expect(a.every((s, i) => s.key !== b[i]!.key)).toBe(true);
  });

  it('is independent of anything but its inputs', () => {
    expect(plan(RECIPE).map((s) => s.key)).toEqual(plan(RECIPE).map((s) => s.key));
  });
});
