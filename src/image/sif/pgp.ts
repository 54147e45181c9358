import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

/**
 * The part of OpenPGP (RFC 4880) that verifying a SIF signature needs, over node:crypto: ASCII
 * armor, packets, public keys (RSA, Ed25519) from public or secret key blocks, version 4
 * signature packets with their hashed subpackets and trailer, and cleartext-signed messages
 * (what `apptainer sign` writes into a SIF signature object). No signing, no encryption.
 */

export interface PgpKey {
  /** 20-byte v4 fingerprint (SHA-1 of the public key packet). */
  readonly fingerprint: Buffer;
  /** The last 8 bytes of the fingerprint. */
  readonly keyId: Buffer;
  /** The fingerprint of the primary key this key belongs to (itself for a primary key). */
  readonly primary: Buffer;
  readonly algorithm: 'rsa' | 'ed25519';
  readonly key: KeyObject;
}

export interface PgpSignature {
  readonly type: number;
  readonly publicKeyAlgorithm: number;
  readonly hashAlgorithm: number;
  /** What the signature hashes after the data: version through hashed subpackets, then the trailer. */
  readonly hashedTail: Buffer;
  readonly left16: Buffer;
  /** The signature MPIs (RSA: one; EdDSA: r and s). */
  readonly mpis: readonly Buffer[];
  readonly issuerKeyId: Buffer | undefined;
  readonly issuerFingerprint: Buffer | undefined;
}

export interface ClearSigned {
  /** The message as its lines joined with LF (what the signer wrote, dash-escaping undone). */
  readonly plaintext: Buffer;
  /** The canonical text the signature covers: trailing blanks cut, CRLF between lines. */
  readonly signedText: Buffer;
  readonly signature: Buffer;
}

/** A PGP problem, said in words for the error message. */
export class PgpError extends Error {}

const HASHES: Readonly<Record<number, string>> = { 8: 'sha256', 9: 'sha384', 10: 'sha512', 11: 'sha224' };
const ED25519_OID = Buffer.from('2b06010401da470f01', 'hex');

/** The binary content of the first ASCII-armored block in `text` (or `text` itself when it is binary). */
export function dearmor(data: Buffer): Buffer {
  const text = data.toString('latin1');
  const begin = text.indexOf('-----BEGIN PGP ');
  if (begin < 0) return data;
  const lines = text.slice(begin).split(/\r?\n/);
  let i = 1;
  while (i < lines.length && lines[i]!.trim() !== '') i++; // armor headers
  const body: string[] = [];
  for (i++; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.startsWith('-----END ') || line.startsWith('=')) break;
    body.push(line);
  }
  return Buffer.from(body.join(''), 'base64');
}

/** The packets of a binary OpenPGP stream: tag and body. */
export function packets(data: Buffer): { tag: number; body: Buffer }[] {
  const out: { tag: number; body: Buffer }[] = [];
  let at = 0;
  while (at < data.length) {
    const first = data[at++]!;
    if ((first & 0x80) === 0) throw new PgpError(`not an OpenPGP packet at byte ${at - 1}`);
    let tag: number;
    let length: number;
    if (first & 0x40) {
      tag = first & 0x3f;
      const o = data[at++]!;
      if (o < 192) length = o;
      else if (o < 224) length = ((o - 192) << 8) + data[at++]! + 192;
      else if (o === 255) {
        length = data.readUInt32BE(at);
        at += 4;
      } else throw new PgpError('partial-length packets are not supported');
    } else {
      tag = (first >> 2) & 0x0f;
      const kind = first & 3;
      if (kind === 0) length = data[at++]!;
      else if (kind === 1) {
        length = data.readUInt16BE(at);
        at += 2;
      } else if (kind === 2) {
        length = data.readUInt32BE(at);
        at += 4;
      } else length = data.length - at;
    }
    if (at + length > data.length) throw new PgpError('an OpenPGP packet is cut short');
    out.push({ tag, body: data.subarray(at, at + length) });
    at += length;
  }
  return out;
}

/** Reads a multiprecision integer at `at`: its bytes and where the next field starts. */
function mpi(b: Buffer, at: number): { value: Buffer; next: number } {
  if (at + 2 > b.length) throw new PgpError('an OpenPGP number is cut short');
  const bytes = Math.ceil(b.readUInt16BE(at) / 8);
  if (at + 2 + bytes > b.length) throw new PgpError('an OpenPGP number is cut short');
  return { value: b.subarray(at + 2, at + 2 + bytes), next: at + 2 + bytes };
}

function base64url(b: Buffer): string {
  return b.toString('base64url');
}

/** The public part of a key packet (public, secret, or their subkey forms), or undefined for algorithms we do not verify. */
function publicKey(body: Buffer, primary: Buffer | undefined): PgpKey | undefined {
  if (body[0] !== 4) return undefined; // v3 and v5 keys: not used by SIF tooling
  const algorithm = body[5]!;
  let end: number;
  let key: KeyObject;
  let kind: PgpKey['algorithm'];
  if (algorithm === 1 || algorithm === 2 || algorithm === 3) {
    const n = mpi(body, 6);
    const e = mpi(body, n.next);
    end = e.next;
    key = createPublicKey({ key: { kty: 'RSA', n: base64url(n.value), e: base64url(e.value) }, format: 'jwk' });
    kind = 'rsa';
  } else if (algorithm === 22) {
    const oidLength = body[6]!;
    const oid = body.subarray(7, 7 + oidLength);
    const point = mpi(body, 7 + oidLength);
    end = point.next;
    if (!oid.equals(ED25519_OID) || point.value.length !== 33 || point.value[0] !== 0x40) return undefined;
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: base64url(point.value.subarray(1)) }, format: 'jwk' });
    kind = 'ed25519';
  } else return undefined;
  const material = body.subarray(0, end);
  const header = Buffer.from([0x99, material.length >> 8, material.length & 0xff]);
  const fingerprint = createHash('sha1').update(header).update(material).digest();
  return { fingerprint, keyId: fingerprint.subarray(12), primary: primary ?? fingerprint, algorithm: kind, key };
}

/** Every verifying key (primary keys and subkeys) in a public or secret key block, armored or binary. */
export function readKeys(data: Buffer): PgpKey[] {
  const keys: PgpKey[] = [];
  let primary: Buffer | undefined;
  for (const p of packets(dearmor(data))) {
    if (p.tag === 6 || p.tag === 5) {
      const k = publicKey(p.body, undefined);
      primary = k?.fingerprint ?? createHash('sha1').update(p.body).digest();
      if (k) keys.push(k);
    } else if (p.tag === 14 || p.tag === 7) {
      const k = publicKey(p.body, primary);
      if (k) keys.push(k);
    }
  }
  if (keys.length === 0) throw new PgpError('no RSA or Ed25519 OpenPGP key found');
  return keys;
}

/** A version 4 signature packet. */
export function readSignature(data: Buffer): PgpSignature {
  const p = packets(data).find((q) => q.tag === 2);
  if (!p) throw new PgpError('no signature packet');
  const b = p.body;
  if (b[0] !== 4) throw new PgpError(`signature packet version ${b[0]} is not supported (only 4)`);
  const hashedLength = b.readUInt16BE(4);
  const hashedEnd = 6 + hashedLength;
  const unhashedLength = b.readUInt16BE(hashedEnd);
  const unhashedEnd = hashedEnd + 2 + unhashedLength;
  let issuerKeyId: Buffer | undefined;
  let issuerFingerprint: Buffer | undefined;
  for (const [from, to] of [
    [6, hashedEnd],
    [hashedEnd + 2, unhashedEnd],
  ] as const) {
    let at = from;
    while (at < to) {
      let length = b[at++]!;
      if (length >= 192 && length < 255) length = ((length - 192) << 8) + b[at++]! + 192;
      else if (length === 255) {
        length = b.readUInt32BE(at);
        at += 4;
      }
      const type = b[at]! & 0x7f;
      const value = b.subarray(at + 1, at + length);
      if (type === 16) issuerKeyId ??= Buffer.from(value);
      if (type === 33 && value[0] === 4) issuerFingerprint ??= Buffer.from(value.subarray(1));
      at += length;
    }
  }
  const hashed = b.subarray(0, hashedEnd);
  const trailer = Buffer.alloc(6);
  trailer[0] = 4;
  trailer[1] = 0xff;
  trailer.writeUInt32BE(hashed.length, 2);
  const mpis: Buffer[] = [];
  for (let at = unhashedEnd + 2; at < b.length; ) {
    const m = mpi(b, at);
    mpis.push(m.value);
    at = m.next;
  }
  return {
    type: b[1]!,
    publicKeyAlgorithm: b[2]!,
    hashAlgorithm: b[3]!,
    hashedTail: Buffer.concat([hashed, trailer]),
    left16: b.subarray(unhashedEnd, unhashedEnd + 2),
    mpis,
    issuerKeyId,
    issuerFingerprint,
  };
}

/** Splits a cleartext-signed message (RFC 4880, 7) into its text and its signature. */
export function readClearSigned(data: Buffer): ClearSigned {
  const lines = data.toString('utf8').split('\n').map((l) => l.replace(/\r$/, ''));
  const start = lines.findIndex((l) => l === '-----BEGIN PGP SIGNED MESSAGE-----');
  if (start < 0) throw new PgpError('not a cleartext-signed message');
  let i = start + 1;
  while (i < lines.length && lines[i] !== '') i++; // Hash: headers
  const text: string[] = [];
  for (i++; i < lines.length && lines[i] !== '-----BEGIN PGP SIGNATURE-----'; i++) {
    const line = lines[i]!;
    text.push(line.startsWith('- ') ? line.slice(2) : line);
  }
  if (i >= lines.length) throw new PgpError('the cleartext-signed message has no signature');
  return {
    plaintext: Buffer.from(text.join('\n')),
    signedText: Buffer.from(text.map((l) => l.replace(/[ \t]+$/, '')).join('\r\n')),
    signature: dearmor(Buffer.from(lines.slice(i).join('\n'))),
  };
}

/** The key of `keys` that made `signature`, by issuer fingerprint or key ID. */
export function signingKey(signature: PgpSignature, keys: readonly PgpKey[]): PgpKey | undefined {
  if (signature.issuerFingerprint) return keys.find((k) => k.fingerprint.equals(signature.issuerFingerprint!));
  if (signature.issuerKeyId) return keys.find((k) => k.keyId.equals(signature.issuerKeyId!));
  return undefined;
}

/**
 * Checks `signature` over `data` with `key`: the hash of the data, the hashed subpackets and the
 * trailer, its left 16 bits, then the RSA PKCS#1 v1.5 or Ed25519 signature. Throws PgpError with
 * the reason when it does not hold.
 */
export function verifySignature(data: Buffer, signature: PgpSignature, key: PgpKey): void {
  const hash = HASHES[signature.hashAlgorithm];
  if (hash === undefined) throw new PgpError(`hash algorithm ${signature.hashAlgorithm} is not accepted (SHA-224, SHA-256, SHA-384, SHA-512)`);
  if (signature.type !== 0x00 && signature.type !== 0x01) throw new PgpError(`signature type 0x${signature.type.toString(16)} is not a document signature`);
  const signed = Buffer.concat([data, signature.hashedTail]);
  const digest = createHash(hash).update(signed).digest();
  if (!digest.subarray(0, 2).equals(signature.left16)) throw new PgpError('the signed data does not match the signature (hash prefix differs)');
  let good: boolean;
  if (key.algorithm === 'rsa') {
    if (signature.publicKeyAlgorithm !== 1 && signature.publicKeyAlgorithm !== 3) throw new PgpError('the signature is not an RSA signature');
    const modulusBytes = Math.ceil((key.key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
    const s = signature.mpis[0] ?? Buffer.alloc(0);
    const padded = s.length < modulusBytes ? Buffer.concat([Buffer.alloc(modulusBytes - s.length), s]) : s;
    good = verify(hash, signed, key.key, padded);
  } else {
    if (signature.publicKeyAlgorithm !== 22) throw new PgpError('the signature is not an EdDSA signature');
    const pad = (b: Buffer | undefined): Buffer => Buffer.concat([Buffer.alloc(Math.max(0, 32 - (b?.length ?? 0))), b ?? Buffer.alloc(0)]);
    good = verify(null, digest, key.key, Buffer.concat([pad(signature.mpis[0]), pad(signature.mpis[1])]));
  }
  if (!good) throw new PgpError('the signature does not verify with this key');
}
