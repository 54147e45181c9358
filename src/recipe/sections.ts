import { error, type Diagnostic, type SourceLocation } from '../core/diagnostic.js';
import type { AnySectionName, FileEntry, FilesBlock, Label, Section, Stage } from './model.js';

/** A section's script as the build runs it: repeated sections appended in file order. */
export interface Script {
  readonly text: string;
  /** Arguments of the last occurrence that has any (`-c /bin/bash`), as Apptainer does. */
  readonly args: string;
  /** Where each part came from, for messages ("%post at recipe.def:14"). */
  readonly sections: readonly Section[];
}

export function sectionsOf(stage: Stage, name: AnySectionName, app?: string): Section[] {
  return stage.sections.filter((s) => s.name === name && (app === undefined || s.app === app));
}

/** The appended text of all `%name` sections (of one app for `%app*`), or undefined if there is none. */
export function scriptOf(stage: Stage, name: AnySectionName, app?: string): Script | undefined {
  const parts = sectionsOf(stage, name, app);
  if (parts.length === 0) return undefined;
  let args = '';
  for (const p of parts) if (p.args !== '') args = p.args;
  return { text: parts.map((p) => p.body).join('\n'), args, sections: parts };
}

/** SCIF app names in the order they first appear (the order Apptainer installs them in). */
export function appNames(stage: Stage): string[] {
  const names: string[] = [];
  for (const s of stage.sections) if (s.app !== undefined && !names.includes(s.app)) names.push(s.app);
  return names;
}

/** Body lines with their 1-based line numbers, skipping blanks and `#` comments. */
function contentLines(section: Section): Array<{ text: string; line: number; column: number }> {
  const out: Array<{ text: string; line: number; column: number }> = [];
  section.body.split('\n').forEach((raw, k) => {
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    out.push({ text: trimmed, line: section.bodyLine + k, column: raw.length - raw.trimStart().length + 1 });
  });
  return out;
}

function loc(section: Section, line: number, column: number, length: number): SourceLocation {
  // Rebuild the source line from the body; the section line itself is in section.location.
  const sourceLine = section.body.split('\n')[line - section.bodyLine] ?? '';
  return { file: section.location.file, line, column, endColumn: column + Math.max(1, length), sourceLine };
}

/** Whether text[i] is white space as JavaScript's `\s` has it, without a regex for ASCII. */
function isSpace(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  if (c < 128) return c === 32 || (c >= 9 && c <= 13);
  return /\s/.test(text[i]!);
}

/**
 * Splits a `%files` line into words: whitespace separates, "double" or 'single' quotes group, and a
 * `{{ var }}` placeholder stays inside its word even with spaces in the braces.
 */
export function splitFilesLine(text: string): { words: string[]; unclosed?: string } {
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && isSpace(text, i)) i++;
    if (i >= text.length) break;
    let word = '';
    while (i < text.length && !isSpace(text, i)) {
      const c = text[i]!;
      if (c === '"' || c === "'") {
        const end = text.indexOf(c, i + 1);
        if (end === -1) return { words, unclosed: c };
        word += text.slice(i + 1, end);
        i = end + 1;
      } else if (text.startsWith('{{', i)) {
        const end = text.indexOf('}}', i + 2);
        const stop = end === -1 ? text.length : end + 2;
        word += text.slice(i, stop);
        i = stop;
      } else {
        word += c;
        i++;
      }
    }
    words.push(word);
  }
  return { words };
}

/** The `%files` and `%appfiles` blocks of a stage, parsed. Syntax problems go to `diagnostics`. */
export function filesBlocks(stage: Stage, diagnostics?: Diagnostic[]): FilesBlock[] {
  const blocks: FilesBlock[] = [];
  for (const section of stage.sections) {
    if (section.name !== 'files' && section.name !== 'appfiles') continue;
    const entries: FileEntry[] = [];
    for (const l of contentLines(section)) {
      const { words, unclosed } = splitFilesLine(l.text);
      const location = loc(section, l.line, l.column, l.text.length);
      if (unclosed) {
        diagnostics?.push(
          error('recipe-files-syntax', `unclosed ${unclosed} quote in a %${section.name} line`, {
            location,
            hint: `close the quote: ${unclosed}path with spaces${unclosed}`,
          }),
        );
        continue;
      }
      if (words.length > 2) {
        diagnostics?.push({
          severity: 'warning',
          reason: 'recipe-files-extra-words',
          message: `a %${section.name} line is 'SOURCE [DESTINATION]'; '${words.slice(2).join(' ')}' is ignored`,
          location,
          hint: 'quote paths that contain spaces',
        });
      }
      entries.push({ src: words[0] ?? '', dst: words[1] ?? '', location });
    }
    const m = section.name === 'files' ? /^from\s+(\S+)\s*$/i.exec(section.args) : null;
    const fromStage = m?.[1];
    blocks.push({
      ...(fromStage !== undefined ? { fromStage, fromLocation: section.location } : {}),
      ...(section.app !== undefined ? { app: section.app } : {}),
      entries,
    });
  }
  return blocks;
}

/** `%labels` (or `%applabels NAME`) as key/value pairs: the first word is the key, the rest the value. */
export function labelsOf(stage: Stage, app?: string): Label[] {
  const labels: Label[] = [];
  const name = app === undefined ? 'labels' : 'applabels';
  for (const section of sectionsOf(stage, name, app)) {
    for (const l of contentLines(section)) {
      const m = /^(\S+)\s*(.*)$/.exec(l.text)!;
      labels.push({ key: m[1]!, value: m[2]!.trim(), location: loc(section, l.line, l.column, m[1]!.length) });
    }
  }
  return labels;
}

export interface ArgumentDefault {
  readonly name: string;
  readonly value: string;
  readonly location: SourceLocation;
}

/** `%arguments` defaults (`NAME=value` lines) of every stage, in file order. */
export function argumentsOf(stages: readonly Stage[], diagnostics?: Diagnostic[]): ArgumentDefault[] {
  const out: ArgumentDefault[] = [];
  for (const stage of stages) {
    for (const section of sectionsOf(stage, 'arguments')) {
      for (const l of contentLines(section)) {
        const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(l.text);
        if (!m) {
          diagnostics?.push(
            error('recipe-arguments-syntax', `'${l.text}' is not 'NAME=value'`, {
              location: loc(section, l.line, l.column, l.text.length),
              hint: '%arguments lines give defaults for {{ NAME }} placeholders: NAME=value',
            }),
          );
          continue;
        }
        let value = m[2]!.trim();
        if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) value = value.slice(1, -1);
        out.push({ name: m[1]!, value, location: loc(section, l.line, l.column, m[1]!.length) });
      }
    }
  }
  return out;
}
