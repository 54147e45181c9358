const UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  TB: 1000 ** 4,
};

/**
 * Bytes of an ext3 `size` (docs/ARCHITECTURE.md, Manifest and recipes): a whole number of bytes (`1073741824`), or a whole
 * number with a unit: `KiB MiB GiB TiB` (powers of 1024) or `KB MB GB TB` (powers of 1000).
 * Single-letter units (`10M`) are refused as ambiguous. Returns undefined for anything else.
 */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 1 ? value : undefined;
  const m = /^([1-9][0-9]*)(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/.exec(value);
  if (!m) return undefined;
  const bytes = Number(m[1]) * (UNITS[m[2] ?? 'B'] ?? 1);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
