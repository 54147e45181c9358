import { parseDocument } from 'yaml';
import { describe, expect, it } from 'vitest';
import { duplicateKeys } from '../../src/manifest/duplicate-keys.js';

// Our linear stand-in for the yaml package's quadratic `uniqueKeys: true` check: the same errors at the same places.
const withPackage = (text: string) =>
  parseDocument(text, { uniqueKeys: true, version: '1.2', merge: true })
    .errors.filter((e) => e.code === 'DUPLICATE_KEY')
    .map((e) => [e.code, e.pos[0]]);
const ours = (text: string) => duplicateKeys(parseDocument(text, { uniqueKeys: false, version: '1.2', merge: true })).map((e) => [e.code, e.pos[0]]);

describe('duplicateKeys', () => {
  for (const text of [
    'a: 1\nb: 2\na: 3\n',
    'targets:\n  x:\n    format: sandbox\n    format: ext3\n  y: {from: a, from: b}\n',
    'a: [ {k: 1, k: 2}, {k: 1} ]\n"a": 2\n',
    '1: one\n"1": string one\n1: again\n',
    'a: 1\nb: 2\n',
  ]) {
    it(`finds what uniqueKeys: true finds in ${JSON.stringify(text)}`, () => {
      // The order differs (the visit is outer maps first); diagnostics are sorted by position anyway.
      expect(ours(text).sort()).toEqual(withPackage(text).sort());
    });
  }
});
