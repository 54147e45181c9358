/**
 * Tables keyed by names users write (targets, groups, args, stages, apps, labels, header keys):
 * `constructor`, `toString` or `__proto__` are keys like any other. A plain `{}` answers
 * `table['constructor']` with Object's own function and takes `table['__proto__'] = x` as a
 * change of prototype; these never do.
 */

/** An empty table without a prototype. JSON.stringify, Object.entries and spreads treat it as `{}`. */
export function nameTable<T>(entries?: Iterable<readonly [string, T]>): Record<string, T> {
  const table = Object.create(null) as Record<string, T>;
  if (entries) for (const [k, v] of entries) table[k] = v;
  return table;
}

/** `record[key]` when `record` has `key` as its own property, else undefined (never inherited). */
export function ownValue<T>(record: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}
