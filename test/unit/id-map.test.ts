import { describe, expect, it } from 'vitest';
import { idMapMapping, parseIdMap } from '../../src/core/id-map.js';

const mapping = (text: string): string => idMapMapping(parseIdMap(text));

describe('idMapMapping', () => {
  it('reads the namespace mapping from a uid_map text', () => {
    expect(mapping('         0          0 4294967295\n')).toBe('initial');
    expect(mapping('         0       1000          1\n         1    4100000      65536\n')).toBe('subuid');
    expect(mapping('         0       1000          1\n')).toBe('single-id');
    // Root of the host mapped to itself alone is a namespace too.
    expect(mapping('         0          0          1\n')).toBe('single-id');
  });
});
