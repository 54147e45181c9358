import { describe, expect, it } from 'vitest';
import { changedWhileBuilding, type TargetComponents } from '../../src/freshness/fingerprint.js';

const base: TargetComponents = {
  tool: '0.1.0/1',
  source: { text: 'docker://debian:bookworm', id: 'unresolved' },
  header: { 'build/Bootstrap': { value: 'docker', line: 1 }, 'build/(source)': { value: 'unresolved' }, 'final/Bootstrap': { value: 'localimage', line: 5 }, 'final/(source)': { value: 'sha256:aa' } },
  sections: { '%post': { value: 'sha256:11', file: 'r.def', line: 3 } },
  args: {},
  inputs: { 'data.txt': 'sha256:22' },
  format: { format: 'squashfs', test: 'true', platform: 'linux/amd64' },
};

describe('changedWhileBuilding', () => {
  it('accepts the registry pins a build makes, for the target and for earlier docker stages', () => {
    expect(changedWhileBuilding(base, base)).toBe(false);
    expect(changedWhileBuilding(base, { ...base, source: { ...base.source, id: 'sha256:ff' } })).toBe(false);
    expect(changedWhileBuilding(base, { ...base, header: { ...base.header, 'build/(source)': { value: 'sha256:ee' } } })).toBe(false);
  });

  it('sees any file the build read change under it', () => {
    expect(changedWhileBuilding(base, { ...base, inputs: { 'data.txt': 'sha256:33' } })).toBe(true);
    expect(changedWhileBuilding(base, { ...base, sections: { '%post': { value: 'sha256:12', file: 'r.def', line: 3 } } })).toBe(true);
    // A local image behind an earlier stage, and a local folder as the target's source, are files.
    expect(changedWhileBuilding(base, { ...base, header: { ...base.header, 'final/(source)': { value: 'sha256:ab' } } })).toBe(true);
    const folder = { ...base, source: { text: './rootfs', id: 'sha256:01' } };
    expect(changedWhileBuilding(folder, { ...folder, source: { text: './rootfs', id: 'sha256:02' } })).toBe(true);
    expect(changedWhileBuilding(base, { ...base, format: { ...base.format, test: 'false' } })).toBe(true);
  });
});
