/** Whether a path as written is a shell glob. */
export function isGlob(text: string): boolean {
  return /[*?[]/.test(text);
}
