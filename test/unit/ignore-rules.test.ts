import { describe, expect, it } from 'vitest';
import { isIgnored, parseIgnoreRules } from '../../src/core/ignore-rules.js';

describe('.orchestratorignore rules', () => {
  const rules = parseIgnoreRules('# a comment\n\n/scratch/\n*.log\n!keep.log\ndocs/**/*.tmp\n**/cache\n');
  const cases: Array<[string, boolean]> = [
    ['scratch', true],
    ['scratch/a/b.txt', true],
    ['x.log', true],
    ['sub/x.log', false],
    ['keep.log', false],
    ['docs/a.tmp', true],
    ['docs/a/b/c.tmp', true],
    ['a/b/cache/x', true],
    ['cache', true],
    ['data.txt', false],
  ];
  it('matches as .dockerignore does: comments, `!`, `*` within a segment, `**` across, folders with their content', () => {
    expect(rules.map((r) => `${r.negate ? '!' : ''}${r.pattern}`)).toEqual(['scratch', '*.log', '!keep.log', 'docs/**/*.tmp', '**/cache']);
    expect(cases.map(([p]) => [p, isIgnored(rules, p)])).toEqual(cases);
  });
});
