import type { Reason } from './reasons.js';

export type { Reason, ReasonKind } from './reasons.js';

/**
 * Expected failures are values. A Diagnostic is the one shape they all take: a stable `reason`
 * code that tests and tools can match, a message for people, where it happened, and what to do.
 */
export interface SourceLocation {
  /** Path as it should be printed (relative to the working folder where possible). */
  readonly file: string;
  /** 1-based line. */
  readonly line: number;
  /** 1-based column of the culprit's first character. */
  readonly column: number;
  /** 1-based column just past the culprit on `line` (for the caret run); defaults to column + 1. */
  readonly endColumn?: number;
  /** The text of `line`, to print under the message. */
  readonly sourceLine?: string;
}

export type Severity = 'error' | 'warning' | 'note';

export interface RelatedInformation {
  readonly message: string;
  readonly location?: SourceLocation;
}

export interface Diagnostic {
  readonly severity: Severity;
  /** Stable, kebab-case, one of the list in src/core/reasons.ts (`'recipe-unknown-section'`, `'digest-mismatch'`). */
  readonly reason: Reason;
  readonly message: string;
  readonly location?: SourceLocation;
  readonly hint?: string;
  /** Further places that explain this one (each edge of a cycle, the first definition of a duplicate). */
  readonly related?: readonly RelatedInformation[];
}

export function error(
  reason: Reason,
  message: string,
  extra: { location?: SourceLocation | undefined; hint?: string | undefined; related?: readonly RelatedInformation[] } = {},
): Diagnostic {
  return {
    severity: 'error',
    reason,
    message,
    ...(extra.location ? { location: extra.location } : {}),
    ...(extra.hint !== undefined ? { hint: extra.hint } : {}),
    ...(extra.related && extra.related.length > 0 ? { related: extra.related } : {}),
  };
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** Sort by file, then line, then column; diagnostics without a location come first. */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => {
    const la = a.location;
    const lb = b.location;
    if (!la || !lb) return la ? 1 : lb ? -1 : 0;
    if (la.file !== lb.file) return la.file < lb.file ? -1 : 1;
    return la.line - lb.line || la.column - lb.column;
  });
}

/**
 * Locations from 0-based offsets in a text. Keeps a line index so that many lookups in one file
 * stay cheap.
 */
export class LineIndex {
  readonly #starts: number[];
  constructor(
    readonly file: string,
    readonly text: string,
  ) {
    const starts = [0];
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
    this.#starts = starts;
  }

  /** The line (1-based) holding `offset`. */
  lineOf(offset: number): number {
    let lo = 0;
    let hi = this.#starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.#starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }

  lineText(line: number): string {
    const start = this.#starts[line - 1] ?? this.text.length;
    const next = this.#starts[line];
    const end = next === undefined ? this.text.length : next - 1;
    return this.text.slice(start, end).replace(/\r$/, '');
  }

  /** Location of the span [start, end) in the text; a span over several lines is cut at the first. */
  span(start: number, end: number = start + 1): SourceLocation {
    const line = this.lineOf(start);
    const lineStart = this.#starts[line - 1] ?? 0;
    const sourceLine = this.lineText(line);
    const column = start - lineStart + 1;
    const endColumn = Math.max(column + 1, Math.min(end - lineStart + 1, sourceLine.length + 1));
    return { file: this.file, line, column, endColumn, sourceLine };
  }

  /** Location of a 1-based line and column, with an optional length for the caret run. */
  at(line: number, column: number, length = 1): SourceLocation {
    const sourceLine = this.lineText(line);
    return { file: this.file, line, column, endColumn: column + Math.max(1, length), sourceLine };
  }
}
