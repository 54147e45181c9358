import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { error, type Diagnostic } from '../../core/diagnostic.js';
import { fail, ok, type Result } from '../../core/result.js';
import { PgpError, readClearSigned, readSignature, signingKey, verifySignature, type PgpKey } from './pgp.js';
import { readSifObject, signatureOf, type SifImage, type SifObject } from './read-sif.js';
import { DATA_SIGNATURE, SIF_LAUNCH_LENGTH } from './sif-format.js';

export interface VerifiedSignature {
  /** The signature object's ID. */
  readonly signature: number;
  /** Its hash ("SHA-256"). */
  readonly hash: string;
  /** The signer's primary key fingerprint, upper-case hex. */
  readonly key: string;
  /** A legacy signature (a digest of object data only, as SingularityCE < 3.6 signed). */
  readonly legacy: boolean;
  /** The group the signature covers, when it covers a group. */
  readonly group?: number;
  /** Whether the global header (launch line, magic, version, ID) is covered. */
  readonly header: boolean;
  /** The objects whose descriptors and data the signature covers and that matched. */
  readonly objects: readonly number[];
}

/** Digest names in signature metadata ("sha256:...") → node's. */
const METADATA_HASHES: Readonly<Record<string, string>> = {
  sha224: 'sha224',
  sha256: 'sha256',
  sha384: 'sha384',
  sha512: 'sha512',
  sha512_224: 'sha512-224',
  sha512_256: 'sha512-256',
};

interface ImageMetadata {
  readonly version: number;
  readonly header: { readonly digest: string };
  readonly objects: readonly { readonly relativeId: number; readonly descriptorDigest: string; readonly objectDigest: string }[];
}

/** The digest of the objects' data, one after the other, read in chunks (a partition may be large). */
async function digestOfObjects(image: SifImage, objects: readonly SifObject[], hash: string): Promise<Buffer> {
  const h = createHash(hash);
  for (const object of objects) {
    if (object.size === 0) continue;
    for await (const chunk of createReadStream(image.path, { start: object.offset, end: object.offset + object.size - 1, highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  }
  return h.digest();
}

/** The header fields a signature covers: launch line, magic, version, ID (pkg/sif, GetIntegrityReader). */
function headerIntegrityBytes(image: SifImage): Buffer {
  const h = image.rawHeader;
  return Buffer.concat([h.subarray(0, SIF_LAUNCH_LENGTH + 10 + 3), h.subarray(48, 64)]);
}

/** The descriptor fields a signature covers, with the ID relative to the group's lowest. */
function descriptorIntegrityBytes(object: SifObject, relativeId: number): Buffer {
  const r = object.raw;
  const id = Buffer.alloc(4);
  id.writeUInt32LE(relativeId);
  return Buffer.concat([r.subarray(0, 5), id, r.subarray(13, 17), r.subarray(25, 33), r.subarray(41, 49), r.subarray(57, 73), r.subarray(73, 585)]);
}

function parseDigest(text: unknown): { hash: string; value: Buffer } | undefined {
  if (typeof text !== 'string') return undefined;
  const [name, hex] = text.split(':');
  const hash = name === undefined ? undefined : METADATA_HASHES[name];
  if (hash === undefined || hex === undefined || !/^[0-9a-f]+$/.test(hex)) return undefined;
  return { hash, value: Buffer.from(hex, 'hex') };
}

function matches(digest: { hash: string; value: Buffer }, data: Buffer): boolean {
  return createHash(digest.hash).update(data).digest().equals(digest.value);
}

type Checked = Result<VerifiedSignature, Diagnostic>;

/** One signature object's checks: what it covers, or the first failure. */
interface SignatureCheck {
  readonly shownAs: string;
  readonly image: SifImage;
  readonly sig: SifObject;
  /** The signed message, as the signer wrote it. */
  readonly plaintext: Buffer;
  readonly base: Pick<VerifiedSignature, 'signature' | 'hash' | 'key'>;
  readonly bad: (message: string, hint?: string) => Checked;
}

function integrityError(shownAs: string, what: string, signature: number): Checked {
  return fail(error('sif-integrity', `${shownAs}: ${what} does not match signature object ${signature}`, { hint: 'the image was changed after it was signed; do not trust it' }));
}

function groupObjects(image: SifImage, group: number): SifObject[] {
  return image.objects.filter((o) => o.group === group);
}

/** A legacy signature: "SIFHASH:" and one digest of an object's data (or a group's, concatenated). */
async function checkLegacy(c: SignatureCheck): Promise<Checked> {
  const { sig, image } = c;
  const hash = signatureOf(sig)!.hash;
  if (!hash) return c.bad('the descriptor names no known hash type');
  const expected = Buffer.from(c.plaintext.toString('latin1').slice('SIFHASH:\n'.length).trim(), 'hex');
  const covered = sig.linkIsGroup ? groupObjects(image, sig.link) : image.objects.filter((o) => o.id === sig.link);
  if (covered.length === 0) return c.bad(`it is linked to ${sig.linkIsGroup ? 'group' : 'object'} ${sig.link}, which the image does not have`);
  if (!(await digestOfObjects(image, covered, hash.node)).equals(expected)) return integrityError(c.shownAs, sig.linkIsGroup ? `the data of group ${sig.link}` : `object ${sig.link}`, sig.id);
  return ok({ ...c.base, legacy: true, ...(sig.linkIsGroup ? { group: sig.link } : {}), header: false, objects: covered.map((o) => o.id) });
}

/** A current signature: JSON digests of the header and of each object (descriptor, data) of its group. */
async function checkMetadata(c: SignatureCheck): Promise<Checked> {
  const { sig, image } = c;
  let metadata: ImageMetadata;
  try {
    metadata = JSON.parse(c.plaintext.toString('utf8')) as ImageMetadata;
  } catch {
    return c.bad('the signed message is neither SIF metadata (JSON) nor a legacy SIFHASH');
  }
  if (!sig.linkIsGroup) return c.bad('a signature with metadata must be linked to an object group');
  const objects = groupObjects(image, sig.link);
  if (objects.length === 0) return c.bad(`it is linked to group ${sig.link}, which the image does not have`);
  const minId = Math.min(...objects.map((o) => o.id));
  const header = parseDigest(metadata.header?.digest);
  if (metadata.version !== 1 || !header || !Array.isArray(metadata.objects)) return c.bad('the signed metadata is not SIF metadata version 1');
  if (!matches(header, headerIntegrityBytes(image))) return integrityError(c.shownAs, 'the global header', sig.id);
  const signedIds = metadata.objects.map((m) => minId + m.relativeId).sort((a, b) => a - b);
  const ids = objects.map((o) => o.id).sort((a, b) => a - b);
  if (signedIds.join(',') !== ids.join(',')) {
    return c.bad(`it covers objects ${signedIds.join(', ')}, but group ${sig.link} holds objects ${ids.join(', ')}`, 'an object was added to or removed from the group after signing; do not trust it');
  }
  for (const m of metadata.objects) {
    const object = objects.find((o) => o.id === minId + m.relativeId)!;
    const descriptor = parseDigest(m.descriptorDigest);
    const data = parseDigest(m.objectDigest);
    if (!descriptor || !data) return c.bad('the signed metadata holds a malformed digest');
    if (!matches(descriptor, descriptorIntegrityBytes(object, m.relativeId))) return integrityError(c.shownAs, `the descriptor of object ${object.id}`, sig.id);
    if (!(await digestOfObjects(image, [object], data.hash)).equals(data.value)) return integrityError(c.shownAs, `the data of object ${object.id}`, sig.id);
  }
  return ok({ ...c.base, legacy: false, group: sig.link, header: true, objects: ids });
}

/** The PGP part: the cleartext signature verifies with a key of `keys` that the descriptor names. */
async function checkSignature(shownAs: string, image: SifImage, sig: SifObject, keys: readonly PgpKey[], keyFile: string): Promise<Checked> {
  const bad = (message: string, hint?: string): Checked =>
    fail(error('sif-signature-invalid', `${shownAs}: signature object ${sig.id}: ${message}`, { hint: hint ?? 'the image was changed after it was signed, or signed by someone else' }));
  const meta = signatureOf(sig)!;
  let plaintext: Buffer;
  let key: PgpKey;
  try {
    const message = readClearSigned(await readSifObject(image, sig));
    const signature = readSignature(message.signature);
    const found = signingKey(signature, keys);
    if (!found) {
      const by = (signature.issuerFingerprint ?? signature.issuerKeyId)?.toString('hex').toUpperCase() ?? 'an unnamed key';
      return bad(`signed by ${by}, which is not a key in ${keyFile}`, "give the signer's public key with --key");
    }
    verifySignature(message.signedText, signature, found);
    plaintext = message.plaintext;
    key = found;
  } catch (e) {
    if (e instanceof PgpError) return bad(e.message);
    throw e;
  }
  if (meta.fingerprint && !meta.fingerprint.equals(key.primary)) {
    return bad(`the descriptor names key ${meta.fingerprint.toString('hex').toUpperCase()}, but the signature was made with ${key.primary.toString('hex').toUpperCase()}`);
  }
  const c: SignatureCheck = { shownAs, image, sig, plaintext, bad, base: { signature: sig.id, hash: meta.hash?.name ?? 'unknown', key: key.primary.toString('hex').toUpperCase() } };
  return plaintext.toString('latin1').startsWith('SIFHASH:\n') ? checkLegacy(c) : checkMetadata(c);
}

/**
 * Verifies every signature object of a SIF image with the given PGP keys, as `apptainer verify`
 * does: the cleartext signature over its message, the signer against the descriptor's
 * fingerprint, then the message against the image. A current signature (linked to a group) holds
 * JSON digests of the header and of each object's descriptor and data in the group, and must name
 * exactly the group's objects; a legacy one ("SIFHASH:") holds one digest of an object's data (or
 * of a group's data, concatenated). The first failure is the error.
 */
export async function verifySif(shownAs: string, image: SifImage, keys: readonly PgpKey[], keyFile: string): Promise<Result<VerifiedSignature[], Diagnostic>> {
  const signatures = image.objects.filter((o) => o.dataType === DATA_SIGNATURE);
  if (signatures.length === 0) {
    return fail(error('sif-not-signed', `${shownAs}: the SIF image has no signature objects`, { hint: "sign it with 'apptainer sign', or check 'orchestrator sif list'" }));
  }
  const verified: VerifiedSignature[] = [];
  for (const sig of signatures) {
    const checked = await checkSignature(shownAs, image, sig, keys, keyFile);
    if (!checked.ok) return checked;
    verified.push(checked.value);
  }
  return ok(verified);
}

/** One line per verified signature, for people. */
export function formatVerified(v: VerifiedSignature): string {
  const objects = `object${v.objects.length === 1 ? '' : 's'} ${v.objects.join(', ')}`;
  const covers = v.header ? `the header and ${objects}` : objects;
  const of = v.group !== undefined ? ` (group ${v.group})` : '';
  return `Signature object ${v.signature} verified${v.legacy ? ' (legacy)' : ''}: ${v.hash}, PGP key ${v.key}; covers ${covers}${of}\n`;
}
