/** One word for /bin/sh, single-quoted unless it is plainly safe. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_./:=@%+,-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A value for use inside double quotes in /bin/sh. */
export function doubleQuoteEscape(value: string): string {
  return value.replace(/[\\"$`]/g, (c) => `\\${c}`);
}
