import type { Diagnostic } from './diagnostic.js';

/**
 * Carries an expected failure (a Diagnostic) through code that streams or nests deeply, up to the
 * public function that turns it back into a `Result`. It never escapes a module's public API.
 */
export class DiagnosticError extends Error {
  constructor(readonly diagnostic: Diagnostic) {
    super(diagnostic.message);
    this.name = 'DiagnosticError';
  }
}

export function isDiagnosticError(e: unknown): e is DiagnosticError {
  return e instanceof DiagnosticError;
}
