import { describe, expect, it } from 'vitest';
import { parseIdMap } from '../../src/core/id-map.js';
import { chooseBuildMode, subordinateRange, unshareArgs, type HostFacts } from '../../src/runtime/user-namespace.js';

const USER: HostFacts = {
  uid: 1001,
  gid: 1001,
  user: 'alice',
  subuid: 'bob:100000:65536\nalice:165536:65536\n',
  subgid: '1001:165536:65536\n',
  idMapTools: true,
  maxUserNamespaces: 15000,
  unprivilegedUsernsClone: undefined,
};

describe('subordinateRange', () => {
  it('finds the caller by name or uid, and only ranges of at least 65536 ids', () => {
    expect(subordinateRange(USER.subuid, 'alice', 1001)).toEqual({ start: 165536, count: 65536 });
    expect(subordinateRange(USER.subgid, 'alice', 1001)).toEqual({ start: 165536, count: 65536 });
    expect(subordinateRange('alice:100000:1000\n', 'alice', 1001)).toBeUndefined();
    expect(subordinateRange('# alice:100000:65536\n', 'alice', 1001)).toBeUndefined();
    expect(subordinateRange('', 'alice', 1001)).toBeUndefined();
  });
});

describe('chooseBuildMode', () => {
  it('root builds as root; a user with ranges and newuidmap in subuid mode; else single-id', () => {
    expect(chooseBuildMode('auto', { ...USER, uid: 0, gid: 0, user: 'root' }, {})).toEqual({ ok: true, value: { mode: 'root', namespace: false } });
    expect(chooseBuildMode('auto', USER, {})).toEqual({
      ok: true,
      value: { mode: 'subuid', namespace: true, uidRange: { start: 165536, count: 65536 }, gidRange: { start: 165536, count: 65536 } },
    });
    expect(chooseBuildMode('auto', { ...USER, subgid: '' }, {})).toEqual({ ok: true, value: { mode: 'single-id', namespace: true } });
    expect(chooseBuildMode('auto', { ...USER, idMapTools: false }, {})).toEqual({ ok: true, value: { mode: 'single-id', namespace: true } });
  });

  it('--fakeroot names the missing piece and the fix', () => {
    const noRange = chooseBuildMode('fakeroot', { ...USER, subuid: '' }, {});
    expect(!noRange.ok && noRange.error).toMatchObject({
      reason: 'no-subordinate-ids',
      message: '--fakeroot needs a range of at least 65536 subordinate ids for alice in /etc/subuid, and there is none',
    });
    const noTool = chooseBuildMode('fakeroot', { ...USER, idMapTools: false }, {});
    expect(!noTool.ok && noTool.error).toMatchObject({ reason: 'no-newuidmap', hint: "install them: 'apt-get install uidmap' (Debian, Ubuntu) or 'dnf install shadow-utils', or build without --fakeroot (single-id mode)" });
    const asRoot = chooseBuildMode('fakeroot', { ...USER, uid: 0, gid: 0, user: 'root', subuid: 'root:200000:65536\n', subgid: 'root:200000:65536\n' }, {});
    expect(asRoot.ok && asRoot.value.mode).toBe('subuid');
  });

  it('says which sysctl disables user namespaces', () => {
    const max = chooseBuildMode('auto', { ...USER, maxUserNamespaces: 0 }, {});
    expect(!max.ok && max.error.reason).toBe('userns-disabled');
    const clone = chooseBuildMode('auto', { ...USER, unprivilegedUsernsClone: 0 }, {});
    expect(!clone.ok && clone.error.message).toBe('building without root needs a user namespace, and this kernel allows them only to root (kernel.unprivileged_userns_clone is 0)');
  });

  it('--no-fakeroot: root as ever, anyone else needs root', () => {
    expect(chooseBuildMode('no-fakeroot', { ...USER, uid: 0 }, {})).toEqual({ ok: true, value: { mode: 'root', namespace: false } });
    const r = chooseBuildMode('no-fakeroot', USER, {});
    expect(!r.ok && r.error.reason).toBe('needs-root');
  });

  it('a marker without the namespace behind it is not believed', () => {
    // This test process is not in a user namespace: the marker alone changes nothing.
    const r = chooseBuildMode('auto', USER, { ORCHESTRATOR_USERNS: 'single-id:1001:1001' });
    expect(r.ok && r.value.namespace).toBe(true);
  });
});

describe('unshareArgs and parseIdMap', () => {
  it('maps 0 to the caller, and 1.. to the range in subuid mode', () => {
    expect(unshareArgs({ mode: 'single-id', namespace: true })).toEqual(['--user', '--mount', '--map-user=0', '--map-group=0']);
    expect(unshareArgs({ mode: 'subuid', namespace: true, uidRange: { start: 165536, count: 65536 }, gidRange: { start: 200000, count: 70000 } })).toEqual([
      '--user',
      '--mount',
      '--map-user=0',
      '--map-group=0',
      '--map-users=165536,1,65536',
      '--map-groups=200000,1,70000',
    ]);
  });

  it('reads /proc/PID/uid_map text', () => {
    expect(parseIdMap('         0       1001          1\n         1     165536      65536\n')).toEqual([
      { inside: 0, outside: 1001, count: 1 },
      { inside: 1, outside: 165536, count: 65536 },
    ]);
  });
});
