import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  bootstrapMethod,
  debootstrapKey,
  debootstrapRequest,
  DEBOOTSTRAP_SCHEMA,
  preferredBootstrapTool,
  publishFolder,
  withoutCredentials,
  type BootstrapMethod,
} from '../../src/builder/debootstrap-source.js';
import { hostAptMirror, hostAptSources, parseAptSources, pickMirror } from '../../src/builder/host-apt-mirror.js';
import { parseRecipe } from '../../src/recipe/parse-recipe.js';
import { formatDiagnostics } from '../../src/report/diagnostics.js';

const ONE_LINE = [
  '# the main archive',
  'deb-src http://src.example.invalid/debian bookworm main',
  'deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://a.example.invalid/debian bookworm main contrib  # trailing',
  'deb http://a.example.invalid/debian bookworm-updates main',
  '   deb   https://b.example.invalid/debian-security   bookworm-security main',
  'deb cdrom:[Debian GNU/Linux 12]/ bookworm main',
  'not a source line',
  '',
].join('\n');

const DEB822 = [
  '# comment',
  'Types: deb deb-src',
  '# a comment inside the paragraph',
  'URIs: http://c.example.invalid/debian',
  'Suites: bookworm bookworm-updates',
  'Components: main',
  'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
  '',
  '',
  'Types: deb-src',
  'URIs: http://src.example.invalid/debian',
  'Suites: trixie',
  'Components: main',
  '',
  'Types: deb',
  'URIs: http://off.example.invalid/debian',
  'Suites: trixie',
  'Components: main',
  'Enabled: no',
  '',
  'types: deb',
  'uris: http://d.example.invalid/debian-security http://e.example.invalid/debian-security',
  'suites: bookworm-security',
  'components: main',
  'Signed-By:',
  ' -----BEGIN PGP PUBLIC KEY BLOCK-----',
  ' .',
  ' xyz',
  ' -----END PGP PUBLIC KEY BLOCK-----',
].join('\n');

describe('parseAptSources', () => {
  it('reads the one-line format: deb lines only, options skipped, unusable URIs dropped', () => {
    expect(parseAptSources(ONE_LINE, 'sources.list')).toEqual([
      { uri: 'http://a.example.invalid/debian', suites: ['bookworm'], components: ['main', 'contrib'], file: 'sources.list' },
      { uri: 'http://a.example.invalid/debian', suites: ['bookworm-updates'], components: ['main'], file: 'sources.list' },
      { uri: 'https://b.example.invalid/debian-security', suites: ['bookworm-security'], components: ['main'], file: 'sources.list' },
    ]);
  });

  it('reads deb822: Types with deb, every URI, case-insensitive keys, Enabled: no skipped, continuation lines', () => {
    expect(parseAptSources(DEB822, 'debian.sources')).toEqual([
      { uri: 'http://c.example.invalid/debian', suites: ['bookworm', 'bookworm-updates'], components: ['main'], file: 'debian.sources' },
      { uri: 'http://d.example.invalid/debian-security', suites: ['bookworm-security'], components: ['main'], file: 'debian.sources' },
      { uri: 'http://e.example.invalid/debian-security', suites: ['bookworm-security'], components: ['main'], file: 'debian.sources' },
    ]);
  });

  it('picks the first source serving the suite, else the first source, else none', () => {
    const sources = parseAptSources(DEB822, 'debian.sources');
    expect(pickMirror(sources, 'bookworm-security')?.uri).toBe('http://d.example.invalid/debian-security');
    expect(pickMirror(sources, 'bookworm')?.uri).toBe('http://c.example.invalid/debian');
    // Another release: the same mirror usually serves it.
    expect(pickMirror(sources, 'trixie')?.uri).toBe('http://c.example.invalid/debian');
    expect(pickMirror([], 'bookworm')).toBeUndefined();
  });
});

describe('hostAptSources', () => {
  let etc: string;
  beforeEach(() => {
    etc = mkdtempSync(join(tmpdir(), 'orch-apt-'));
  });
  afterEach(() => rmSync(etc, { recursive: true, force: true }));

  it('reads sources.list, then sources.list.d/*.list and *.sources in name order, nothing else', async () => {
    mkdirSync(join(etc, 'sources.list.d'));
    writeFileSync(join(etc, 'sources.list'), 'deb http://first.example.invalid/debian trixie main\n');
    writeFileSync(join(etc, 'sources.list.d/b.sources'), 'Types: deb\nURIs: http://b.example.invalid/debian\nSuites: bookworm\nComponents: main\n');
    writeFileSync(join(etc, 'sources.list.d/a.list'), 'deb http://a.example.invalid/debian bookworm main\n');
    writeFileSync(join(etc, 'sources.list.d/c.list.disabled'), 'deb http://c.example.invalid/debian bookworm main\n');
    expect((await hostAptSources({ etcApt: etc })).map((s) => s.uri)).toEqual([
      'http://first.example.invalid/debian',
      'http://a.example.invalid/debian',
      'http://b.example.invalid/debian',
    ]);
    expect((await hostAptMirror('bookworm', { etcApt: etc }))?.uri).toBe('http://a.example.invalid/debian');
    expect((await hostAptMirror('sid', { etcApt: etc }))?.uri).toBe('http://first.example.invalid/debian');
  });

  it('finds nothing in an empty or missing configuration', async () => {
    expect(await hostAptSources({ etcApt: join(etc, 'missing') })).toEqual([]);
    expect(await hostAptMirror('bookworm', { etcApt: etc })).toBeUndefined();
  });
});

describe('debootstrapKey', () => {
  const base = { suite: 'bookworm', mirror: 'http://a.example.invalid/debian', include: ['curl', 'ca-certificates'], arch: 'amd64', method: 'mmdebstrap' as BootstrapMethod };
  const hex = (over: Partial<typeof base> = {}) => debootstrapKey({ ...base, ...over }).hex;

  it('changes with the suite, the mirror, the include list, the arch and the method', () => {
    const all = [
      hex(),
      hex({ suite: 'trixie' }),
      hex({ mirror: 'http://b.example.invalid/debian' }),
      hex({ include: ['curl'] }),
      hex({ arch: 'arm64' }),
      hex({ method: 'debootstrap' }),
      hex({ method: 'mmdebstrap-fakechroot' }),
    ];
    expect(new Set(all).size).toBe(all.length);
    for (const h of all) expect(h).toMatch(/^[0-9a-f]{64}$/);
  });

  it('does not change with the order or repetition of the include list', () => {
    expect(hex({ include: ['ca-certificates', 'curl', 'curl'] })).toBe(hex());
    expect(debootstrapKey(base).key).toEqual({ ...base, include: ['ca-certificates', 'curl'], schema: DEBOOTSTRAP_SCHEMA });
  });
});

describe('the bootstrap method', () => {
  it('is the preferred tool as real root, mmdebstrap --mode=root with subuids, mmdebstrap --mode=fakechroot with one id', () => {
    expect(bootstrapMethod('debootstrap', 'initial')).toBe('debootstrap');
    expect(bootstrapMethod('mmdebstrap', 'initial')).toBe('mmdebstrap');
    expect(bootstrapMethod('debootstrap', 'subuid')).toBe('mmdebstrap');
    expect(bootstrapMethod('mmdebstrap', 'subuid')).toBe('mmdebstrap');
    expect(bootstrapMethod('debootstrap', 'single-id')).toBe('mmdebstrap-fakechroot');
  });

  it('prefers mmdebstrap unless ORCHESTRATOR_DEBIAN_BOOTSTRAP=debootstrap', () => {
    expect(preferredBootstrapTool({})).toBe('mmdebstrap');
    expect(preferredBootstrapTool({ ORCHESTRATOR_DEBIAN_BOOTSTRAP: 'debootstrap' })).toBe('debootstrap');
    expect(preferredBootstrapTool({ ORCHESTRATOR_DEBIAN_BOOTSTRAP: 'mmdebstrap' })).toBe('mmdebstrap');
  });
});

describe('debootstrapRequest', () => {
  const stageOf = (header: string) => {
    const r = parseRecipe(`${header}\n\n%post\n  true\n`, { file: 'r.def' });
    expect(r.diagnostics).toEqual([]);
    return r.recipe.stages[0]!;
  };
  const errorOf = (header: string) => {
    const r = debootstrapRequest(stageOf(header));
    return r.ok ? 'ok' : formatDiagnostics([r.error]);
  };

  it('reads OSVersion, MirrorURL and Include (comma or space separated)', () => {
    const r = debootstrapRequest(stageOf('Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: http://a.example.invalid/debian\nInclude: curl, ca-certificates  less'));
    expect(r.ok && { suite: r.value.suite, mirror: r.value.mirror, include: r.value.include }).toEqual({
      suite: 'bookworm',
      mirror: 'http://a.example.invalid/debian',
      include: ['curl', 'ca-certificates', 'less'],
    });
    const bare = debootstrapRequest(stageOf('Bootstrap: debootstrap\nOSVersion: noble'));
    expect(bare.ok && { mirror: bare.value.mirror, include: bare.value.include }).toEqual({ mirror: undefined, include: [] });
  });

  it('refuses what is not a suite, a mirror URL or a package name, at the value', () => {
    expect(errorOf('Bootstrap: debootstrap\nOSVersion: book worm')).toBe(
      "r.def:2:12: error: 'book worm' is not a suite name\n  OSVersion: book worm\n             ^~~~~~~~~\n  hint: OSVersion is a release code name such as bookworm or noble",
    );
    expect(errorOf('Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: ftp.example.invalid/debian')).toMatch(
      /^r\.def:3:12: error: MirrorURL 'ftp\.example\.invalid\/debian' is not an http:\/\/, https:\/\/ or file:\/\/\/ URL\n/,
    );
    expect(errorOf('Bootstrap: debootstrap\nOSVersion: bookworm\nInclude: curl;rm')).toMatch(/^r\.def:3:10: error: 'curl;rm' in Include is not a package name\n/);
  });

  it('a recipe without OSVersion is already a parse error', () => {
    const r = parseRecipe('Bootstrap: debootstrap\n\n%post\n  true\n', { file: 'r.def' });
    expect(formatDiagnostics(r.diagnostics)).toMatch(/^r\.def:1:1: error: 'Bootstrap: debootstrap' needs a 'OSVersion:' header\n/);
  });
});

describe('publishFolder', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'orch-publish-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const folder = (name: string, text: string) => {
    mkdirSync(join(dir, name, 'etc'), { recursive: true });
    writeFileSync(join(dir, name, 'etc/made-by'), text);
    return join(dir, name);
  };

  it('renames the folder into place', async () => {
    const from = folder('tmp-a', 'a');
    expect(await publishFolder(from, join(dir, 'dest'))).toBe('published');
    expect(readFileSync(join(dir, 'dest/etc/made-by'), 'utf8')).toBe('a');
    expect(existsSync(from)).toBe(false);
  });

  it('keeps what another process published first: "already there" is success', async () => {
    folder('dest', 'the other build');
    const from = folder('tmp-b', 'b');
    expect(await publishFolder(from, join(dir, 'dest'))).toBe('already-there');
    expect(readFileSync(join(dir, 'dest/etc/made-by'), 'utf8')).toBe('the other build');
    expect(existsSync(from)).toBe(true);
  });

  it('other failures are not hidden', async () => {
    await expect(publishFolder(join(dir, 'missing'), join(dir, 'dest'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('withoutCredentials', () => {
  it('hides the user and password of every URL in a text, and nothing else', () => {
    expect(withoutCredentials('E: Failed getting http://me:pw@a.example.invalid/debian and https://tok@b.example.invalid/x')).toBe(
      'E: Failed getting http://***@a.example.invalid/debian and https://***@b.example.invalid/x',
    );
    expect(withoutCredentials('http://a.example.invalid/debian mail me@example.invalid')).toBe('http://a.example.invalid/debian mail me@example.invalid');
  });
});
