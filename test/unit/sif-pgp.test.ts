import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PgpError, readClearSigned, readKeys, readSignature, signingKey, verifySignature } from '../../src/image/sif/pgp.js';

// The OpenPGP reader against messages made here with node:crypto keys: an Ed25519 and an RSA key
// as v4 key packets, cleartext signatures of type 0x01 over text with dash-escaped lines and
// trailing blanks (the SIF test images cover RSA keys made by GnuPG; test/integration/sif-verify).

const mpi = (bytes: Buffer): Buffer => {
  let b = bytes;
  while (b.length > 1 && b[0] === 0) b = b.subarray(1);
  const bits = (b.length - 1) * 8 + (32 - Math.clz32(b[0]!));
  return Buffer.concat([Buffer.from([bits >> 8, bits & 0xff]), b]);
};
/** A new-format packet with a five-byte length. */
function newPacket(tag: number, body: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([Buffer.from([0xc0 | tag, 0xff]), len, body]);
}
const armor = (kind: string, data: Buffer): string => `-----BEGIN PGP ${kind}-----\nComment: test\n\n${data.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PGP ${kind}-----\n`;

interface TestKey {
  readonly block: string;
  readonly fingerprint: Buffer;
  sign(text: string, options?: { hashAlgorithm?: number }): string;
}

function makeKey(kind: 'ed25519' | 'rsa'): TestKey {
  const { publicKey, privateKey } = kind === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' });
  const material =
    kind === 'ed25519'
      ? Buffer.concat([Buffer.from([4, 0x60, 0, 0, 0, 22, 9]), Buffer.from('2b06010401da470f01', 'hex'), mpi(Buffer.concat([Buffer.from([0x40]), Buffer.from(jwk.x!, 'base64url')]))])
      : Buffer.concat([Buffer.from([4, 0x60, 0, 0, 0, 1]), mpi(Buffer.from(jwk.n!, 'base64url')), mpi(Buffer.from(jwk.e!, 'base64url'))]);
  const fingerprint = createHash('sha1')
    .update(Buffer.from([0x99, material.length >> 8, material.length & 0xff]))
    .update(material)
    .digest();
  return {
    block: armor('PUBLIC KEY BLOCK', newPacket(6, material)),
    fingerprint,
    sign: (text, options = {}) => clearSign(text, { kind, privateKey, fingerprint, hashAlgorithm: options.hashAlgorithm ?? 8 }),
  };
}

function clearSign(text: string, o: { kind: 'ed25519' | 'rsa'; privateKey: KeyObject; fingerprint: Buffer; hashAlgorithm: number }): string {
  const hashName = ({ 8: 'sha256', 10: 'sha512', 2: 'sha1' } as Record<number, string>)[o.hashAlgorithm]!;
  const lines = text.split('\n');
  const canonical = Buffer.from(lines.map((l) => l.replace(/[ \t]+$/, '')).join('\r\n'));
  const sub = Buffer.concat([Buffer.from([22, 33, 4]), o.fingerprint]);
  const hashed = Buffer.concat([Buffer.from([4, 0x01, o.kind === 'ed25519' ? 22 : 1, o.hashAlgorithm, 0, sub.length]), sub]);
  const trailer = Buffer.from([4, 0xff, 0, 0, 0, hashed.length]);
  const data = Buffer.concat([canonical, hashed, trailer]);
  const digest = createHash(hashName).update(data).digest();
  const signature =
    o.kind === 'ed25519'
      ? (() => {
          const s = sign(null, digest, o.privateKey);
          return Buffer.concat([mpi(s.subarray(0, 32)), mpi(s.subarray(32))]);
        })()
      : mpi(sign(hashName, data, o.privateKey));
  const body = Buffer.concat([hashed, Buffer.from([0, 0]), digest.subarray(0, 2), signature]);
  const escaped = lines.map((l) => (l.startsWith('-') ? `- ${l}` : l)).join('\n');
  return `-----BEGIN PGP SIGNED MESSAGE-----\nHash: ${hashName.toUpperCase()}\n\n${escaped}\n${armor('SIGNATURE', newPacket(2, body))}`;
}

const TEXT = 'SIFHASH:\n-- a dash line  \nlast line\t';

describe('OpenPGP cleartext signatures', () => {
  for (const kind of ['ed25519', 'rsa'] as const) {
    it(`${kind}: verifies with its key, names the signer, and gives back the text`, () => {
      const key = makeKey(kind);
      const message = readClearSigned(Buffer.from(key.sign(TEXT)));
      expect(message.plaintext.toString()).toBe(TEXT);
      const keys = readKeys(Buffer.from(key.block));
      expect(keys.map((k) => k.fingerprint.toString('hex'))).toEqual([key.fingerprint.toString('hex')]);
      const signature = readSignature(message.signature);
      const found = signingKey(signature, keys)!;
      expect(found.algorithm).toBe(kind);
      expect(() => verifySignature(message.signedText, signature, found)).not.toThrow();
    });

    it(`${kind}: a changed text or another key of the same kind fails`, () => {
      const key = makeKey(kind);
      const other = readKeys(Buffer.from(makeKey(kind).block))[0]!;
      const message = readClearSigned(Buffer.from(key.sign(TEXT)));
      const signature = readSignature(message.signature);
      const own = readKeys(Buffer.from(key.block))[0]!;
      expect(signingKey(signature, [other])).toBeUndefined();
      expect(() => verifySignature(Buffer.from('SIFHASH:\r\nchanged'), signature, own)).toThrow(PgpError);
      expect(() => verifySignature(message.signedText, signature, other)).toThrow('the signature does not verify with this key');
    });
  }

  it('refuses SHA-1 signatures, as apptainer does', () => {
    const key = makeKey('ed25519');
    const message = readClearSigned(Buffer.from(key.sign(TEXT, { hashAlgorithm: 2 })));
    const signature = readSignature(message.signature);
    expect(() => verifySignature(message.signedText, signature, readKeys(Buffer.from(key.block))[0]!)).toThrow(
      'hash algorithm 2 is not accepted (SHA-224, SHA-256, SHA-384, SHA-512)',
    );
  });

  it('says what is wrong with what is not a key or not a signed message', () => {
    expect(() => readKeys(Buffer.from('hello'))).toThrow(PgpError);
    expect(() => readClearSigned(Buffer.from('{"version":1}'))).toThrow('not a cleartext-signed message');
  });
});
