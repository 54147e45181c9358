import { describe, expect, it } from 'vitest';
import { error, type Diagnostic } from '../../src/core/diagnostic.js';
import { REASONS, reasonKind, type Reason, type ReasonKind } from '../../src/core/reasons.js';
import { EXIT, exitCodeOf } from '../../src/cli/command.js';
import { internalErrorText } from '../../src/cli/main.js';

/** The exit status each kind of reason stands for (docs/ARCHITECTURE.md, Failures; src/core/reasons.ts). */
const DOCUMENTED: Record<ReasonKind, number> = {
  usage: 2,
  manifest: 2,
  recipe: 2,
  reference: 2,
  build: 1,
  registry: 1,
  runtime: 1,
  internal: 1,
  interrupted: 130,
};

const err = (reason: Reason): Diagnostic => error(reason, `a ${reason} error`);

describe('exitCodeOf', () => {
  for (const kind of Object.keys(REASONS) as ReasonKind[]) {
    it(`maps every ${kind} reason to ${DOCUMENTED[kind]}`, () => {
      for (const reason of REASONS[kind]) {
        expect(reasonKind(reason)).toBe(kind);
        expect([reason, exitCodeOf([err(reason)])]).toEqual([reason, DOCUMENTED[kind]]);
      }
    });
  }

  it('lists each reason once, in kebab-case', () => {
    const all: string[] = Object.values(REASONS).flat();
    expect(new Set(all).size).toBe(all.length);
    for (const r of all) expect(r).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
  });

  it('is 0 without errors, and warnings do not count', () => {
    expect(exitCodeOf([])).toBe(EXIT.ok);
    expect(exitCodeOf([{ ...err('recipe-unknown-section'), severity: 'warning' }])).toBe(EXIT.ok);
  });

  it('prefers interrupted, then a failure of the work, then bad input', () => {
    expect(exitCodeOf([err('manifest-yaml'), err('step-failed')])).toBe(EXIT.failed);
    expect(exitCodeOf([err('step-failed'), err('interrupted')])).toBe(EXIT.interrupted);
    expect(exitCodeOf([err('usage'), err('recipe-empty'), err('bad-reference')])).toBe(EXIT.usage);
  });

  it('is 130 whenever the run was interrupted, whatever the error says', () => {
    const c = new AbortController();
    c.abort(new Error('interrupted by SIGINT'));
    expect(exitCodeOf([err('registry-unavailable')], c.signal)).toBe(EXIT.interrupted);
    expect(exitCodeOf([err('registry-unavailable')], new AbortController().signal)).toBe(EXIT.failed);
  });

  it('tells a manifest file not found (2) from an image manifest not on the registry (1)', () => {
    expect(exitCodeOf([err('manifest-not-found')])).toBe(EXIT.usage);
    expect(exitCodeOf([err('registry-manifest-not-found')])).toBe(EXIT.failed);
  });
});

describe('an internal error', () => {
  it('says it is a bug and what a report should hold', () => {
    const e = new Error('boom');
    e.stack = 'Error: boom\n    at f (x.js:1:2)';
    const text = internalErrorText(['up', '-j', '2'], e);
    expect(text).toContain('orchestrator: internal error: boom\n');
    expect(text).toContain("report it on the\nproject's issue tracker, with the command, the version and the stack below");
    expect(text).toContain('  command: orchestrator up -j 2\n');
    expect(text).toMatch(/ {2}version: orchestrator \S+, node v\d+/);
    expect(text).toContain('  stack:\n    Error: boom\n        at f (x.js:1:2)\n');
  });
});
