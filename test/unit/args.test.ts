import { describe, expect, it } from 'vitest';
import { helpText, parseArgs, type CommandSpec } from '../../src/cli/args.js';
import { editDistance, didYouMean } from '../../src/core/did-you-mean.js';
import { formatDiagnostic } from '../../src/report/diagnostics.js';
import { LineIndex, error } from '../../src/core/diagnostic.js';

const spec: CommandSpec = {
  name: 'demo',
  summary: 'a demo',
  usage: '[ARG ...]',
  options: [
    { name: 'keep-going', short: 'k', type: 'boolean', description: 'go on' },
    { name: 'jobs', short: 'j', type: 'string', value: 'N', description: 'jobs' },
    { name: 'bind', short: 'B', type: 'string', multiple: true, description: 'binds' },
    { name: 'progress', type: 'string', choices: ['auto', 'plain', 'json'], description: 'progress' },
  ],
  positionals: { min: 0, max: 2 },
};

describe('parseArgs', () => {
  it('parses long, short, bundled and = forms', () => {
    const r = parseArgs(spec, ['-kj4', '--bind=a', '-B', 'b', '--progress', 'json', 'x']);
    expect(r).toEqual({
      ok: true,
      value: { options: { 'keep-going': true, jobs: '4', bind: ['a', 'b'], progress: 'json' }, positionals: ['x'] },
    });
  });

  it('rejects an unknown option with a did-you-mean', () => {
    const r = parseArgs(spec, ['--keep-goin']);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.message).toBe("unknown option '--keep-goin' for 'demo'");
      expect(r.error.hint).toBe("did you mean '--keep-going'?");
    }
  });

  it('rejects a bad choice with a did-you-mean', () => {
    const r = parseArgs(spec, ['--progress', 'jsno']);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.hint).toBe("did you mean 'json'?");
  });

  it('stops at -- and passes the rest through', () => {
    const r = parseArgs({ ...spec, positionals: { min: 1 }, passThroughAfter: 1 }, ['img', '-k', '--x']);
    expect(r.ok && r.value.positionals).toEqual(['img', '-k', '--x']);
  });

  it('counts positionals', () => {
    expect(parseArgs(spec, ['a', 'b', 'c']).ok).toBe(false);
  });

  it('prints help with every option', () => {
    expect(helpText(spec)).toContain('-j, --jobs N');
    expect(helpText(spec)).toContain('--progress VALUE  progress (auto|plain|json)');
  });
});

describe('didYouMean', () => {
  it('finds typos and transpositions', () => {
    expect(editDistance('fomrat', 'format')).toBe(1);
    expect(didYouMean('fomrat', ['format', 'from', 'output'])).toBe('format');
    expect(didYouMean('zzzzzz', ['format', 'from'])).toBeUndefined();
  });
});

describe('formatDiagnostic', () => {
  it('prints file:line:col, the source line, a caret run and the hint', () => {
    const idx = new LineIndex('orchestrator.yaml', 'targets:\n  a:\n    from: target:bse\n');
    const text = formatDiagnostic(
      error('unknown-target', "unknown target 'bse'", { location: idx.at(3, 11, 10), hint: "did you mean 'base'?" }),
    );
    expect(text).toBe(
      [
        "orchestrator.yaml:3:11: error: unknown target 'bse'",
        '      from: target:bse',
        '            ^~~~~~~~~~',
        "  hint: did you mean 'base'?",
      ].join('\n'),
    );
  });

  it('maps offsets to line and column', () => {
    const idx = new LineIndex('f', 'ab\ncd\n');
    expect(idx.span(4, 5)).toMatchObject({ line: 2, column: 2, sourceLine: 'cd' });
  });
});
