/**
 * The Singularity Image Format's numbers and names, as apptainer/sif's `pkg/sif` defines them
 * (docs/ARCHITECTURE.md, SIF images). All integers are little-endian and the structures are
 * packed (no padding), as Go's encoding/binary writes them.
 *
 * Global header (128 bytes): launch script [32], magic "SIF_MAGIC\0" [10], version "01\0" [3],
 * architecture "02\0" [3], UUID [16], then eight int64: created, modified, descriptors free,
 * descriptors total, descriptors offset, descriptors size, data offset, data size.
 *
 * Descriptor (585 bytes): data type int32, used bool, id uint32, group uint32, link uint32, then
 * int64 offset, size, size with padding, created, modified, uid, gid; name [128]; extra [384] (the
 * per-type metadata: a partition's file system, partition type and architecture; a signature's
 * hash type and signer fingerprint).
 */

export const SIF_HEADER_SIZE = 128;
export const SIF_DESCRIPTOR_SIZE = 585;
export const SIF_LAUNCH_LENGTH = 32;
export const SIF_MAGIC = 'SIF_MAGIC\0';
export const SIF_MAGIC_OFFSET = 32;
export const SIF_VERSION = '01';
/** Where `sif` puts the descriptor table and how many slots it reserves (`CreateContainer`). */
export const SIF_DESCRIPTORS_OFFSET = 4096;
export const SIF_DESCRIPTOR_CAPACITY = 48;
/** Partitions start on a multiple of this (`NewDescriptorInput`). */
export const SIF_PARTITION_ALIGNMENT = 4096;
/** The top four bits of a group or link field: set on every group ID, and on a link to a group. */
export const SIF_GROUP_MASK = 0xf0000000;
export const SIF_NAME_LENGTH = 128;
export const SIF_EXTRA_LENGTH = 384;
/** `time.Time{}.Unix()` in Go: what a deterministic image stores as its times ("no time"). */
export const GO_ZERO_TIME = -62135596800n;

export const SIF_DATA_TYPES = {
  0x4001: 'Def.FILE',
  0x4002: 'Env.Vars',
  0x4003: 'JSON.Labels',
  0x4004: 'FS',
  0x4005: 'Signature',
  0x4006: 'JSON.Generic',
  0x4007: 'Generic/Raw',
  0x4008: 'Cryptographic Message',
  0x4009: 'SBOM',
  0x400a: 'OCI.RootIndex',
  0x400b: 'OCI.Blob',
} as const;

export const DATA_DEFFILE = 0x4001;
export const DATA_LABELS = 0x4003;
export const DATA_PARTITION = 0x4004;
export const DATA_SIGNATURE = 0x4005;
export const DATA_GENERIC_JSON = 0x4006;
export const DATA_CRYPTO_MESSAGE = 0x4008;
export const DATA_SBOM = 0x4009;

export const FS_SQUASHFS = 1;
export const FS_EXT3 = 2;
export const FS_ENCRYPTED_SQUASHFS = 5;
export const FS_GOCRYPTFS_SQUASHFS = 6;
const FS_TYPES: Readonly<Record<number, string>> = {
  1: 'Squashfs',
  2: 'Ext3',
  3: 'Archive',
  4: 'Raw',
  5: 'Encrypted squashfs',
  6: 'Gocryptfs squashfs',
};

export const PART_PRIMSYS = 2;
const PART_TYPES: Readonly<Record<number, string>> = { 1: 'System', 2: '*System', 3: 'Data', 4: 'Overlay' };

/** Hash type numbers → Go's crypto.Hash names (what siftool prints) and node's digest names. */
export const HASH_TYPES: Readonly<Record<number, { name: string; node: string }>> = {
  1: { name: 'SHA-256', node: 'sha256' },
  2: { name: 'SHA-384', node: 'sha384' },
  3: { name: 'SHA-512', node: 'sha512' },
  4: { name: 'BLAKE2s-256', node: 'blake2s256' },
  5: { name: 'BLAKE2b-256', node: 'blake2b512' },
};

const FORMAT_TYPES: Readonly<Record<number, string>> = { 1: 'OpenPGP', 2: 'PEM' };
const MESSAGE_TYPES: Readonly<Record<number, string>> = { 0x100: 'Clear Signature', 0x200: 'RSA-OAEP' };
const SBOM_FORMATS: Readonly<Record<number, string>> = {
  1: 'cyclonedx-json',
  2: 'cyclonedx-xml',
  3: 'github-json',
  4: 'spdx-json',
  5: 'spdx-rdf',
  6: 'spdx-tag-value',
  7: 'spdx-yaml',
  8: 'syft-json',
};

/** Architecture codes in the header and in partitions ("02") → Go's GOARCH names. */
const ARCHES: Readonly<Record<string, string>> = {
  '01': '386',
  '02': 'amd64',
  '03': 'arm',
  '04': 'arm64',
  '05': 'ppc64',
  '06': 'ppc64le',
  '07': 'mips',
  '08': 'mipsle',
  '09': 'mips64',
  '10': 'mips64le',
  '11': 's390x',
  '12': 'riscv64',
  '13': 'loong64',
};

export function dataTypeName(type: number): string {
  return (SIF_DATA_TYPES as Readonly<Record<number, string>>)[type] ?? 'Unknown';
}

export function isKnownDataType(type: number): boolean {
  return dataTypeName(type) !== 'Unknown';
}

export function fsTypeName(fs: number): string {
  return FS_TYPES[fs] ?? 'Unknown';
}

export function partTypeName(part: number): string {
  return PART_TYPES[part] ?? 'Unknown';
}

export function formatTypeName(format: number): string {
  return FORMAT_TYPES[format] ?? 'Unknown';
}

export function messageTypeName(message: number): string {
  return MESSAGE_TYPES[message] ?? 'Unknown';
}

export function sbomFormatName(format: number): string {
  return SBOM_FORMATS[format] ?? 'unknown';
}

/** The 3 bytes of an architecture field ("02\0") → GOARCH, or "unknown". */
export function archName(field: Uint8Array): string {
  if (field[2] !== 0) return 'unknown';
  return ARCHES[Buffer.from(field.subarray(0, 2)).toString('latin1')] ?? 'unknown';
}

/** GOARCH → the 3-byte field, or undefined for an architecture SIF has no code for. */
export function archField(goarch: string): Buffer | undefined {
  const code = Object.keys(ARCHES).find((k) => ARCHES[k] === goarch);
  return code === undefined ? undefined : Buffer.from(`${code}\0`, 'latin1');
}

/** Node's `process.arch` → GOARCH. */
export function goArch(nodeArch: string): string {
  const map: Readonly<Record<string, string>> = { x64: 'amd64', ia32: '386', arm: 'arm', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };
  return map[nodeArch] ?? nodeArch;
}
