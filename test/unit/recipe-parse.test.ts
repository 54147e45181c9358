import { describe, expect, it } from 'vitest';
import { checkSupported } from '../../src/recipe/check-supported.js';
import { parseRecipe } from '../../src/recipe/parse-recipe.js';
import { resolveRecipe } from '../../src/recipe/resolve-recipe.js';
import { appNames, filesBlocks, labelsOf, scriptOf, splitFilesLine } from '../../src/recipe/sections.js';
import { formatDiagnostics } from '../../src/report/diagnostics.js';

const parse = (text: string) => parseRecipe(text, { file: 'r.def' });
const only = (text: string) => {
  const r = parse(text);
  expect(r.diagnostics).toEqual([]);
  return r.recipe;
};
const errorsOf = (text: string) => formatDiagnostics(parse(text).diagnostics);

describe('recipe header', () => {
  it('reads keys case-insensitively, with comments and continuation lines', () => {
    const r = only(
      [
        '# a comment',
        'BOOTSTRAP: debootstrap   # trailing comment',
        'osversion: bookworm',
        'Include: apt \\',
        '   ca-certificates \\',
        '   curl',
        '',
        '%post',
        '  echo hi',
      ].join('\n'),
    );
    const stage = r.stages[0]!;
    expect(stage.bootstrap).toBe('debootstrap');
    expect(stage.header.get('osversion')!.value).toBe('bookworm');
    expect(stage.header.get('include')!.value).toBe('apt ca-certificates curl');
    expect(stage.header.get('bootstrap')!.key).toBe('BOOTSTRAP');
    expect(stage.header.get('osversion')!.location).toMatchObject({ line: 3, column: 1 });
    expect(stage.header.get('osversion')!.valueLocation).toMatchObject({ line: 3, column: 12 });
  });

  it('accepts CRLF line endings and a byte-order mark', () => {
    const r = only('\uFEFFBootstrap: docker\r\nFrom: alpine\r\n\r\n%runscript\r\n  echo hi\r\n');
    expect(r.stages[0]!.header.get('from')!.value).toBe('alpine');
    expect(scriptOf(r.stages[0]!, 'runscript')!.text).toBe('  echo hi');
  });

  it('rejects an unknown header keyword with a did-you-mean', () => {
    expect(errorsOf('Bootstrap: docker\nFrm: alpine\n')).toBe(
      [
        "r.def:2:1: error: unknown header keyword 'Frm'",
        '  Frm: alpine',
        '  ^~~',
        "  hint: did you mean 'From'?",
        // The typo also leaves docker without its From:
        "r.def:1:1: error: 'Bootstrap: docker' needs a 'From:' header",
        '  Bootstrap: docker',
        '  ^~~~~~~~~',
        "  hint: add a line such as 'From: debian:bookworm'",
      ].join('\n'),
    );
  });

  it('accepts OtherURLn keys', () => {
    only('Bootstrap: scratch\nOtherURL1: http://example.invalid/a\nOtherURL2: http://example.invalid/b\n');
  });

  it('rejects an unknown bootstrap agent with a did-you-mean', () => {
    expect(errorsOf('Bootstrap: dokcer\nFrom: alpine\n')).toBe(
      [
        "r.def:1:12: error: unknown bootstrap agent 'dokcer'",
        '  Bootstrap: dokcer',
        '             ^~~~~~',
        "  hint: did you mean 'docker'?",
      ].join('\n'),
    );
  });

  it('requires the keys each agent needs', () => {
    expect(errorsOf('Bootstrap: debootstrap\nMirrorURL: http://example.invalid/debian\n')).toContain(
      "r.def:1:1: error: 'Bootstrap: debootstrap' needs a 'OSVersion:' header",
    );
  });

  it('rejects a header line that is not Key: value', () => {
    expect(errorsOf('Bootstrap docker\n')).toBe(
      [
        "r.def:1:1: error: header line 'Bootstrap docker' is not 'Key: value'",
        '  Bootstrap docker',
        '  ^~~~~~~~~~~~~~~~',
        "  hint: header lines are 'Key: value' (e.g. 'From: debian:bookworm'); sections start with '%' (e.g. '%post')",
      ].join('\n'),
    );
  });

  it('says plainly which agents are parsed but not built yet', () => {
    const r = only('Bootstrap: shub\nFrom: vsoch/hello-world\n');
    const [d] = checkSupported(r);
    expect(d).toMatchObject({ reason: 'recipe-agent-unsupported', message: "bootstrap agent 'shub' is not supported yet" });
    expect(d!.location).toMatchObject({ line: 1, column: 12 });
  });

  it('rejects an empty file', () => {
    expect(parse('# only a comment\n\n').diagnostics[0]!.reason).toBe('recipe-empty');
  });
});

describe('recipe sections', () => {
  const recipe = [
    'Bootstrap: docker',
    'From: alpine',
    '',
    '%setup',
    '  touch ${SINGULARITY_ROOTFS}/setup',
    '%post -c /bin/bash',
    '  echo one',
    '',
    '%environment',
    '  export A=1',
    '%post',
    '  echo two',
    '%labels',
    '  Author me@example.invalid',
    '  Version 1.0',
    '%appinstall foo',
    '  make foo',
    '%apprun foo',
    '  exec foo "$@"',
    '%appinstall bar',
    '  make bar',
    '%files',
    '  a.txt /opt/a.txt',
    '  "with space.txt" /opt/',
    '  only-src',
    '',
    '',
  ].join('\n');

  it('appends repeated sections and keeps the last arguments', () => {
    const stage = only(recipe).stages[0]!;
    const post = scriptOf(stage, 'post')!;
    expect(post.text).toBe('  echo one\n  echo two');
    expect(post.args).toBe('-c /bin/bash');
    expect(post.sections.map((s) => s.location.line)).toEqual([6, 11]);
    expect(post.sections.map((s) => s.bodyLine)).toEqual([7, 12]);
  });

  it('reads labels, apps and files', () => {
    const stage = only(recipe).stages[0]!;
    expect(labelsOf(stage).map((l) => [l.key, l.value, l.location.line])).toEqual([
      ['Author', 'me@example.invalid', 14],
      ['Version', '1.0', 15],
    ]);
    expect(appNames(stage)).toEqual(['foo', 'bar']);
    expect(scriptOf(stage, 'apprun', 'foo')!.text).toBe('  exec foo "$@"');
    const [files] = filesBlocks(stage);
    expect(files!.entries.map((e) => [e.src, e.dst, e.location.line])).toEqual([
      ['a.txt', '/opt/a.txt', 23],
      ['with space.txt', '/opt/', 24],
      ['only-src', '', 25],
    ]);
  });

  it('rejects an unknown section with a did-you-mean', () => {
    expect(errorsOf('Bootstrap: scratch\n%rnuscript\n  echo\n')).toBe(
      ['r.def:2:1: error: %rnuscript is not a section', '  %rnuscript', '  ^~~~~~~~~~', "  hint: did you mean '%runscript'?"].join('\n'),
    );
  });

  it('rejects an app section without an app name', () => {
    expect(parse('Bootstrap: scratch\n%apprun\n  echo\n').diagnostics[0]).toMatchObject({
      reason: 'recipe-app-name-missing',
      message: '%apprun needs an app name',
      location: { line: 2, column: 1 },
    });
  });

  it('rejects an unclosed quote in %files', () => {
    expect(parse('Bootstrap: scratch\n%files\n  "a b /opt\n').diagnostics[0]).toMatchObject({
      reason: 'recipe-files-syntax',
      location: { line: 3, column: 3 },
    });
  });
});

describe('multi-stage recipes', () => {
  const text = [
    'Bootstrap: docker',
    'From: golang:1.22',
    'Stage: build',
    '%post',
    '  go build -o /hello',
    '',
    'Bootstrap: docker',
    'From: alpine',
    'Stage: final',
    '%files from build',
    '  /hello /bin/hello',
  ].join('\n');

  it('splits at Bootstrap lines and links %files from STAGE', () => {
    const r = only(text);
    expect(r.stages.map((s) => [s.name, s.line])).toEqual([
      ['build', 1],
      ['final', 7],
    ]);
    expect(filesBlocks(r.stages[1]!)[0]).toMatchObject({ fromStage: 'build', entries: [{ src: '/hello', dst: '/bin/hello' }] });
  });

  it('rejects %files from an unknown or later stage', () => {
    expect(errorsOf(text.replace('from build', 'from biuld'))).toBe(
      [
        "r.def:10:13: error: %files from an unknown stage 'biuld'",
        '  %files from biuld',
        '              ^~~~~',
        "  hint: did you mean 'build'?",
      ].join('\n'),
    );
    const later = text.replace('%post', '%files from final\n  /x /y\n%post');
    expect(parse(later).diagnostics[0]!.message).toBe("%files from 'final': that stage comes later");
  });

  it('rejects two stages with one name', () => {
    const d = parse(text.replace('Stage: final', 'Stage: build').replace('from build', '')).diagnostics;
    expect(d.map((x) => x.message)).toEqual(["stage 'build' is defined twice"]);
    expect(d[0]!.related![0]!.location).toMatchObject({ line: 3 });
  });
});

describe('templating', () => {
  const text = [
    'Bootstrap: docker',
    'From: alpine:{{ OS_VER }}',
    '%arguments',
    '  OS_VER=3.19',
    '  GREETING="hello world"',
    '%post',
    '  echo {{GREETING}} > /greeting',
    '  echo {{ WHO }}',
  ].join('\n');

  it('substitutes %arguments defaults and given args, and records what it used', () => {
    const { recipe, diagnostics } = resolveRecipe(only(text), { args: { WHO: 'me', UNUSED: 'x' } });
    expect(diagnostics).toEqual([]);
    expect(recipe.stages[0]!.header.get('from')!.value).toBe('alpine:3.19');
    expect(scriptOf(recipe.stages[0]!, 'post')!.text).toBe('  echo hello world > /greeting\n  echo me');
    expect(recipe.argsUsed).toEqual({ OS_VER: '3.19', GREETING: 'hello world', WHO: 'me' });
  });

  it('lets given args override defaults', () => {
    const { recipe } = resolveRecipe(only(text), { args: { WHO: 'me', OS_VER: '3.20' } });
    expect(recipe.stages[0]!.header.get('from')!.value).toBe('alpine:3.20');
  });

  it('reports an undefined argument at its placeholder', () => {
    const { diagnostics } = resolveRecipe(only(text), { args: {} });
    expect(formatDiagnostics(diagnostics)).toBe(
      [
        "r.def:8:8: error: build argument 'WHO' is not defined",
        '    echo {{ WHO }}',
        '         ^~~~~~~~~',
        "  hint: give it a default in %arguments (WHO=...) or a value in orchestrator.yaml 'args'",
      ].join('\n'),
    );
  });

  it('leaves non-placeholders alone', () => {
    const { recipe, diagnostics } = resolveRecipe(only("Bootstrap: scratch\n%post\n  docker inspect -f '{{.Id}}' x\n"), { args: {} });
    expect(diagnostics).toEqual([]);
    expect(scriptOf(recipe.stages[0]!, 'post')!.text).toContain("'{{.Id}}'");
  });
});

describe('splitFilesLine', () => {
  it('splits on any white space, groups quotes and keeps {{ placeholders }} whole', () => {
    expect(splitFilesLine('a\tb  c')).toEqual({ words: ['a', 'b', 'c'] });
    expect(splitFilesLine('"with space" \'single q\'')).toEqual({ words: ['with space', 'single q'] });
    expect(splitFilesLine('{{ src dir }}/x /opt/{{ name }}')).toEqual({ words: ['{{ src dir }}/x', '/opt/{{ name }}'] });
    // Unicode white space separates as \s does (no-break space, ideographic space).
    expect(splitFilesLine('a\u00a0b\u3000c')).toEqual({ words: ['a', 'b', 'c'] });
    expect(splitFilesLine('é ü')).toEqual({ words: ['é', 'ü'] });
    expect(splitFilesLine('"open')).toEqual({ words: [], unclosed: '"' });
  });
});
