import type { Diagnostic, SourceLocation } from '../core/diagnostic.js';

export interface FormatOptions {
  /** ANSI colours (only for terminals). */
  readonly color?: boolean;
}

const paint = (on: boolean, code: string, s: string): string => (on ? `\u001b[${code}m${s}\u001b[0m` : s);

function where(loc: SourceLocation | undefined): string {
  return loc ? `${loc.file}:${loc.line}:${loc.column}: ` : '';
}

/**
 * The source line and a caret run under the culprit. Tabs in the source are kept in the caret line
 * so that the caret stays under the text whatever the terminal's tab width.
 */
function excerpt(loc: SourceLocation): string[] {
  if (loc.sourceLine === undefined) return [];
  const src = loc.sourceLine;
  const start = Math.max(1, loc.column);
  const end = Math.max(start + 1, loc.endColumn ?? start + 1);
  let pad = '';
  for (let i = 0; i < start - 1; i++) pad += src[i] === '\t' ? '\t' : ' ';
  const run = '^' + '~'.repeat(Math.max(0, Math.min(end, src.length + 1) - start - 1));
  return [`  ${src}`, `  ${pad}${run}`];
}

/**
 * Compiler-style text of one diagnostic:
 *
 *     orchestrator.yaml:12:11: error: unknown target 'bse'
 *       from: target:bse
 *             ^~~~~~~~~~
 *       hint: did you mean 'base'?
 */
export function formatDiagnostic(d: Diagnostic, options: FormatOptions = {}): string {
  const color = options.color ?? false;
  const sevColor = d.severity === 'error' ? '1;31' : d.severity === 'warning' ? '1;35' : '1;36';
  const lines = [`${paint(color, '1', where(d.location))}${paint(color, sevColor, `${d.severity}:`)} ${d.message}`];
  if (d.location) lines.push(...excerpt(d.location));
  for (const r of d.related ?? []) {
    lines.push(`${where(r.location)}${paint(color, '1;36', 'note:')} ${r.message}`);
    if (r.location) lines.push(...excerpt(r.location));
  }
  if (d.hint !== undefined) lines.push(`  ${paint(color, '1', 'hint:')} ${d.hint}`);
  return lines.join('\n');
}

export function formatDiagnostics(diagnostics: readonly Diagnostic[], options: FormatOptions = {}): string {
  return diagnostics.map((d) => formatDiagnostic(d, options)).join('\n');
}

/** `2 errors, 1 warning` */
export function countSummary(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.filter((d) => d.severity === 'warning').length;
  const parts = [`${errors} error${errors === 1 ? '' : 's'}`];
  if (warnings > 0) parts.push(`${warnings} warning${warnings === 1 ? '' : 's'}`);
  return parts.join(', ');
}
