import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Rig } from '../helpers/rig.js';

// Names that a plain `{}` answers by itself ('constructor', 'toString', ...) or takes as a change of
// prototype ('__proto__'): as target, arg, stage, app and label names they are names like any other.
let rig: Rig;
beforeEach(async () => {
  rig = await Rig.create();
});
afterEach(() => rig.cleanup());

const RECIPE = [
  'Bootstrap: scratch',
  '',
  '%arguments',
  '    constructor=c1',
  '',
  '%post',
  '    echo {{ constructor }} {{ toString }} {{ __proto__ }} {{ hasOwnProperty }}',
  '',
  '%labels',
  '    __proto__ p',
  '    constructor c',
  '',
  '%appinstall constructor',
  '    true',
  '',
].join('\n');

const MANIFEST = [
  'version: 1',
  'args:',
  '  __proto__: x',
  '  toString: y',
  '  hasOwnProperty: z',
  'targets:',
  '  constructor:',
  '    recipe: a.def',
  '    format: sandbox',
  '    args:',
  '      __proto__: q',
  '  valueof:',
  '    from: target:constructor',
  '    format: squashfs',
  '  hasownproperty:',
  '    recipe: a.def',
  '    inputs: [target:valueof]',
  '    output: out/h.simg',
  'groups:',
  '  tostring: [constructor, valueof]',
  '',
].join('\n');

describe('names that Object.prototype has', () => {
  it('validate, plan and up --dry-run take them as names', async () => {
    rig.write({ 'orchestrator.yaml': MANIFEST, 'a.def': RECIPE });
    const v = await rig.cli(['validate']);
    expect(v.stderr).toBe('');
    expect(v.stdout).toBe('ok: 3 targets\n');
    expect(v.code).toBe(0);

    const p = await rig.cli(['plan']);
    expect(p.stderr).toBe('');
    expect(p.stdout).toContain('1. constructor: stale\n     why:     never built\n');
    expect(p.stdout).toContain('2. valueof: stale\n     why:     never built\n');
    expect(p.stdout).toContain('     needs:   constructor\n');
    expect(p.code).toBe(0);

    const g = await rig.cli(['plan', 'tostring']);
    expect(g.stdout).toContain('1. constructor: stale');
    expect(g.code).toBe(0);

    const d = await rig.cli(['up', '--dry-run']);
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(rig.files()).toEqual(['a.def', 'orchestrator.yaml']);
  });

  it('orchestrator build --build-arg takes them as names, and refuses a NAME that is not one', async () => {
    rig.write({ 'a.def': 'Bootstrap: scratch\n\n%runscript\n    echo {{ __proto__ }} {{ toString }}\n' });
    const b = await rig.cli(['build', '--build-arg', '__proto__=x', '--build-arg', 'toString=y', 'out.simg', 'a.def']);
    expect(b.code, b.stderr).toBe(0);
    const i = await rig.cli(['inspect', '--runscript', 'out.simg']);
    expect(i.stdout).toContain('echo x y');
    const bad = await rig.cli(['build', '--build-arg', 'a b=1', 'bad.simg', 'a.def']);
    expect(bad.stderr).toBe("error: --build-arg 'a b=1' is not NAME=VALUE\n  hint: NAME is letters, digits and _, as in {{ NAME }}\n");
    expect(bad.code).toBe(2);
    expect(rig.files()).not.toContain('bad.simg');
  });

  it("'orchestrator constructor' is an unknown command, not a crash", async () => {
    const r = await rig.cli(['constructor']);
    expect(r.stderr).toBe("error: unknown command 'constructor'\n  hint: run 'orchestrator --help' for the list of commands\n");
    expect(r.code).toBe(2);
  });

  it("'Bootstrap: constructor' is an unknown agent, not a crash", async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  a:\n    recipe: a.def\n    format: sandbox\n',
      'a.def': 'Bootstrap: constructor\nFrom: x\n',
    });
    const r = await rig.cli(['validate']);
    expect(r.stderr).toBe(
      "a.def:1:12: error: unknown bootstrap agent 'constructor'\n  Bootstrap: constructor\n             ^~~~~~~~~~~\n  hint: bootstrap agents are docker, localimage, oci, oci-archive, docker-archive, scratch, debootstrap, docker-daemon, library, shub, oras, yum, dnf, zypper, busybox, arch, sif\n1 error\n",
    );
    expect(r.code).toBe(2);
  });
});
