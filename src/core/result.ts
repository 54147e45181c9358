import type { Diagnostic } from './diagnostic.js';

/** What a function that can fail in an expected way returns. */
export type Result<T, E = Diagnostic> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

export function fail<E>(error: E): { readonly ok: false; readonly error: E } {
  return { ok: false, error };
}
