import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCliInProcess } from '../helpers/cli.js';

// `sif verify --key` on apptainer/sif's signed test images (a current signature over group 1 and a
// legacy one over object 2), with their published test key (../shared/sif-testdata/keys), with a
// key that did not sign them, and on copies changed after signing.
const TESTDATA = process.env['SIF_TESTDATA'] ?? join(REPO_ROOT, '..', 'shared', 'sif-testdata');
const present = existsSync(join(TESTDATA, 'keys', 'private.asc'));
const KEY = join(TESTDATA, 'keys', 'private.asc');
const SIGNED = join(TESTDATA, 'one-group-signed-pgp.sif');
const LEGACY = join(TESTDATA, 'two-groups-signed-legacy.sif');
const FINGERPRINT = '12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84';

let work: string;
let wrongKey: string;

/** An armored OpenPGP v4 RSA public key packet for a fresh key: a key that signed nothing. */
function otherPublicKey(): string {
  const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
  const mpi = (b64: string): Buffer => {
    let b = Buffer.from(b64, 'base64url');
    while (b.length > 1 && b[0] === 0) b = b.subarray(1);
    const bits = (b.length - 1) * 8 + (32 - Math.clz32(b[0]!));
    return Buffer.concat([Buffer.from([bits >> 8, bits & 0xff]), b]);
  };
  const body = Buffer.concat([Buffer.from([4, 0x5e, 0, 0, 0, 1]), mpi(jwk.n!), mpi(jwk.e!)]);
  const packet = Buffer.concat([Buffer.from([0x99, body.length >> 8, body.length & 0xff]), body]);
  return `-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n${packet.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PGP PUBLIC KEY BLOCK-----\n`;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orch-sif-verify-'));
  wrongKey = join(work, 'wrong.asc');
  writeFileSync(wrongKey, otherPublicKey());
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of `image` with `bytes` written at `at`. */
function changed(image: string, name: string, at: number, bytes: string): string {
  const path = join(work, name);
  copyFileSync(image, path);
  const b = readFileSync(path);
  b.write(bytes, at, 'latin1');
  writeFileSync(path, b);
  return path;
}

if (!present) it.skip('sif verify: skipped, ../shared/sif-testdata is absent (SIF_TESTDATA names another copy)', () => undefined);

describe.skipIf(!present)('sif verify', () => {
  it('passes with the signing key, and says what each signature covers', async () => {
    let r = await runCliInProcess(['sif', 'verify', '--key', KEY, SIGNED]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`Signature object 3 verified: SHA-256, PGP key ${FINGERPRINT}; covers the header and objects 1, 2 (group 1)\n`);
    expect(r.code).toBe(0);
    r = await runCliInProcess(['sif', 'verify', '--key', KEY, LEGACY]);
    expect(r.stdout).toBe(`Signature object 4 verified (legacy): SHA-384, PGP key ${FINGERPRINT}; covers object 2\n`);
    expect(r.code).toBe(0);
    r = await runCliInProcess(['sif', 'verify', '--json', '--key', KEY, SIGNED]);
    expect(JSON.parse(r.stdout)).toEqual([{ signature: 3, hash: 'SHA-256', key: FINGERPRINT, legacy: false, group: 1, header: true, objects: [1, 2] }]);
  });

  it('fails with a key that did not sign', async () => {
    for (const [image, id] of [
      [SIGNED, 3],
      [LEGACY, 4],
    ] as const) {
      const r = await runCliInProcess(['sif', 'verify', '--key', wrongKey, image]);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `error: ${image}: signature object ${id}: signed by ${image === SIGNED ? FINGERPRINT : FINGERPRINT.slice(24)}, which is not a key in ${wrongKey}\n  hint: give the signer's public key with --key\n`,
      );
      expect(r.code).toBe(2);
    }
  });

  it('fails when the data, a descriptor or the header changed after signing', async () => {
    const hint = '  hint: the image was changed after it was signed; do not trust it\n';
    let p = changed(SIGNED, 'data.sif', 36864 + 200, 'X');
    let r = await runCliInProcess(['sif', 'verify', '--key', KEY, p]);
    expect(r.stderr).toBe(`error: ${p}: the data of object 2 does not match signature object 3\n${hint}`);
    expect(r.code).toBe(2);
    p = changed(SIGNED, 'name.sif', 4096 + 73, 'renamed');
    r = await runCliInProcess(['sif', 'verify', '--key', KEY, p]);
    expect(r.stderr).toBe(`error: ${p}: the descriptor of object 1 does not match signature object 3\n${hint}`);
    p = changed(SIGNED, 'launch.sif', 0, '#!/bin/sh\n');
    r = await runCliInProcess(['sif', 'verify', '--key', KEY, p]);
    expect(r.stderr).toBe(`error: ${p}: the global header does not match signature object 3\n${hint}`);
    p = changed(LEGACY, 'legacy-data.sif', 36864 + 1, 'X');
    r = await runCliInProcess(['sif', 'verify', '--key', KEY, p]);
    expect(r.stderr).toBe(`error: ${p}: object 2 does not match signature object 4\n${hint}`);
  });

  it('fails when the signed message was changed', async () => {
    const at = readFileSync(SIGNED).indexOf('"version":1');
    const p = changed(SIGNED, 'message.sif', at, '"version":2');
    const r = await runCliInProcess(['sif', 'verify', '--key', KEY, p]);
    expect(r.stderr).toBe(`error: ${p}: signature object 3: the signed data does not match the signature (hash prefix differs)\n  hint: the image was changed after it was signed, or signed by someone else\n`);
    expect(r.code).toBe(2);
  });

  it('an image without signatures, a missing key file, no --key', async () => {
    const unsigned = join(TESTDATA, 'one-group.sif');
    let r = await runCliInProcess(['sif', 'verify', '--key', KEY, unsigned]);
    expect(r.stderr).toBe(`error: ${unsigned}: the SIF image has no signature objects\n  hint: sign it with 'apptainer sign', or check 'orchestrator sif list'\n`);
    r = await runCliInProcess(['sif', 'verify', '--key', join(work, 'none.asc'), SIGNED]);
    expect(r.stderr).toBe(`error: ${join(work, 'none.asc')}: no such file\n  hint: give an OpenPGP key block (gpg --export --armor KEYID > key.asc)\n`);
    r = await runCliInProcess(['sif', 'verify', SIGNED]);
    expect(r.stderr).toBe("error: sif verify needs --key KEYFILE\n  hint: give the signer's OpenPGP public key: orchestrator sif verify --key KEY.asc IMAGE\n");
    expect(r.code).toBe(2);
  });
});
