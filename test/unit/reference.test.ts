import { describe, expect, it } from 'vitest';
import { parseReference } from '../../src/registry/reference.js';

function parse(text: string, options = {}) {
  const r = parseReference(text, options);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

function failure(text: string, options = {}) {
  const r = parseReference(text, options);
  if (r.ok) throw new Error(`expected ${text} to fail`);
  return r.error;
}

const D = `sha256:${'ab'.repeat(32)}`;

describe('parseReference', () => {
  it('normalises Docker Hub short names', () => {
    expect(parse('docker://busybox')).toEqual({
      registry: 'docker.io',
      apiHost: 'registry-1.docker.io',
      repository: 'library/busybox',
      tag: 'latest',
      canonical: 'docker.io/library/busybox:latest',
    });
    expect(parse('ubuntu:24.04').canonical).toBe('docker.io/library/ubuntu:24.04');
    expect(parse('docker://user/tool').canonical).toBe('docker.io/user/tool:latest');
    expect(parse('docker://index.docker.io/library/alpine:3').canonical).toBe('docker.io/library/alpine:3');
  });

  it('reads hosts with ports, deep paths, tags and digests', () => {
    const r = parse(`docker://127.0.0.1:5000/a/b/c:v1.2@${D}`);
    expect(r).toEqual({
      registry: '127.0.0.1:5000',
      apiHost: '127.0.0.1:5000',
      repository: 'a/b/c',
      tag: 'v1.2',
      digest: D,
      canonical: `127.0.0.1:5000/a/b/c:v1.2@${D}`,
    });
    expect(parse(`localhost/x@${D}`)).toMatchObject({ registry: 'localhost', repository: 'x', canonical: `localhost/x@${D}` });
    expect(parse(`localhost/x@${D}`).tag).toBeUndefined();
    expect(parse('ghcr.io/org/img').repository).toBe('org/img');
    expect(parse('localhost:5000/img').registry).toBe('localhost:5000');
  });

  it('takes the recipe header Registry: and Namespace: as defaults', () => {
    expect(parse('tool:1', { registry: 'quay.io', namespace: 'team' }).canonical).toBe('quay.io/team/tool:1');
    expect(parse('tool', { registry: 'quay.io' }).canonical).toBe('quay.io/tool:latest');
    expect(parse('tool', { namespace: 'me' }).canonical).toBe('docker.io/me/tool:latest');
    // A registry in the reference wins over the header.
    expect(parse('ghcr.io/a/tool', { registry: 'quay.io' }).canonical).toBe('ghcr.io/a/tool:latest');
  });

  it('names the bad part of an invalid reference', () => {
    const e = failure('docker://Ubuntu');
    expect(e.reason).toBe('bad-reference');
    expect(e.message).toBe("invalid image reference 'docker://Ubuntu': repository name component 'Ubuntu' must be lowercase");
    expect(e.hint).toBe("try 'ubuntu'");
    expect(failure('docker://ubuntu:bad tag').message).toBe(
      "invalid image reference 'docker://ubuntu:bad tag': tag 'bad tag' may hold only letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')",
    );
    expect(failure('docker://ubuntu@sha256:abc').message).toBe(
      "invalid image reference 'docker://ubuntu@sha256:abc': digest 'sha256:abc' must be 'sha256:' followed by 64 lowercase hex digits",
    );
    expect(failure('docker://host:99999/x').message).toBe(
      "invalid image reference 'docker://host:99999/x': registry port '99999' must be a number from 1 to 65535",
    );
    expect(failure('docker://a//b').message).toBe("invalid image reference 'docker://a//b': the repository path 'a//b' has an empty component");
    expect(failure('docker://').message).toBe("invalid image reference 'docker://': the image name is empty");
    expect(failure('oras://x/y').message).toBe("invalid image reference 'oras://x/y': unsupported scheme 'oras://'");
    expect(failure('docker://a/b-/c').message).toContain("repository name component 'b-'");
    const loc = { file: 'orchestrator.yaml', line: 3, column: 11 };
    expect(failure('docker://X', { location: loc }).location).toEqual(loc);
  });
});
