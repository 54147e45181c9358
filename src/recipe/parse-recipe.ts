import { error, LineIndex, type Diagnostic } from '../core/diagnostic.js';
import { didYouMean } from '../core/did-you-mean.js';
import { AGENTS, HEADER_KEY_SPELLING, HEADER_KEYS, isHeaderKey } from './agents.js';
import {
  APP_SECTION_NAMES,
  isAppSectionName,
  isSectionName,
  SECTION_NAMES,
  type HeaderField,
  type Recipe,
  type Section,
  type Stage,
} from './model.js';
import { filesBlocks } from './sections.js';
import { ownValue } from '../core/name-table.js';

export interface ParseRecipeResult {
  /** Best effort even when there are errors, so that one run reports all of a file's problems. */
  readonly recipe: Recipe;
  readonly diagnostics: readonly Diagnostic[];
}

const STAGE_START = /^bootstrap\s*:/i;
const ALL_SECTIONS = [...SECTION_NAMES, ...APP_SECTION_NAMES].map((s) => `%${s}`);

/**
 * First whitespace-delimited word of a line and its 0-based column. A lone CR (or U+2028) inside
 * the line is whitespace, as Go's unicode.IsSpace takes it in Apptainer's parser: `s` makes `.`
 * match it too, so every line matches.
 */
function firstWord(line: string): { word: string; column: number; rest: string; restColumn: number } {
  const m = /^(\s*)(\S*)(\s*)(.*)$/s.exec(line)!;
  const lead = m[1]!.length;
  return { word: m[2]!, column: lead, rest: m[4]!.trimEnd(), restColumn: lead + m[2]!.length + m[3]!.length };
}

function isSectionLine(line: string): boolean {
  return line.trimStart().startsWith('%');
}

function isBlank(line: string): boolean {
  return line.trim() === '';
}

/**
 * Parses a Singularity definition file as Singularity 2.4 and Apptainer do: a header of
 * `Key: value` lines (keys case-insensitive, `#` comments, `\` continuation), then sections, each
 * starting at a line whose first word begins with `%`. A line starting `Bootstrap:` starts a new
 * stage (multi-stage builds). Templating (`{{ var }}`) is not applied here: see resolveRecipe.
 */
export function parseRecipe(text: string, options: { file: string }): ParseRecipeResult {
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const index = new LineIndex(options.file, source);
  const lines = source.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const diagnostics: Diagnostic[] = [];
  const at = (line: number, column: number, length = 1) => index.at(line, column, length);
  const nul = nulByte(lines, index);
  if (nul) return { recipe: { file: options.file, text: source, stages: [], resolved: false, argsUsed: {} }, diagnostics: [nul] };

  // Split into stages at `Bootstrap:` lines; text before the first one is a stage only if it holds
  // something other than blank lines and comments (Apptainer's "no header" form).
  const starts = [0];
  lines.forEach((l, i) => {
    if (i > 0 && STAGE_START.test(l)) starts.push(i);
  });
  // Singularity 2.4 accepted header keys in any order: header lines before the first `Bootstrap:`
  // (and no section before it) belong to that first stage.
  if (starts.length > 1) {
    const preamble = lines.slice(0, starts[1]);
    const hasHeader = preamble.some((l) => !isBlank(l) && !l.trim().startsWith('#'));
    if (hasHeader && !preamble.some(isSectionLine)) starts.splice(1, 1);
  }
  const stages: Stage[] = [];
  for (let s = 0; s < starts.length; s++) {
    const from = starts[s]!;
    const to = starts[s + 1] ?? lines.length;
    const chunk = lines.slice(from, to);
    if (chunk.every((l) => isBlank(l) || l.trim().startsWith('#'))) continue;
    stages.push(parseStage(chunk, from, stages.length, at, diagnostics));
  }

  if (stages.length === 0) {
    diagnostics.push(
      error('recipe-empty', 'empty definition file: no header and no sections', {
        location: at(1, 1),
        hint: "start with a header such as 'Bootstrap: docker' and 'From: debian:bookworm', then sections like '%post'",
      }),
    );
  }
  checkStages(stages, at, diagnostics);

  return { recipe: { file: options.file, text: source, stages, resolved: false, argsUsed: {} }, diagnostics };
}

/**
 * A NUL byte: the file is not text (Apptainer stops at it too). One error, at the first one; the
 * line is shown with U+2400 in its place, so that the terminal gets no NUL.
 */
function nulByte(lines: readonly string[], index: LineIndex): Diagnostic | undefined {
  const i = lines.findIndex((l) => l.includes('\0'));
  if (i === -1) return undefined;
  const location = index.at(i + 1, lines[i]!.indexOf('\0') + 1);
  return error('recipe-nul-byte', 'the definition file contains a NUL byte', {
    location: { ...location, sourceLine: (location.sourceLine ?? '').replace(/\0/g, '\u2400') },
    hint: 'a definition file is text; is this a binary file, or was it saved as UTF-16?',
  });
}

type At = (line: number, column: number, length?: number) => ReturnType<LineIndex['at']>;

// Long on purpose: one pass over a stage's lines (header, sections, continuations, comments) with
// the parser's position kept in one place; pieces would pass it through every call.
function parseStage(chunk: readonly string[], offset: number, stageIndex: number, at: At, diagnostics: Diagnostic[]): Stage {
  const header = new Map<string, HeaderField>();
  const sections: Section[] = [];
  let i = 0;

  // Header: until the first section line.
  let pending: { key: string; lower: string; value: string; line: number; keyCol: number; valueCol: number } | undefined;
  const commit = (): void => {
    if (!pending) return;
    const p = pending;
    header.set(p.lower, {
      key: p.key,
      value: p.value.trim(),
      location: at(p.line, p.keyCol, p.key.length),
      valueLocation: at(p.line, p.valueCol, Math.max(1, p.value.trim().length)),
    });
    pending = undefined;
  };
  for (; i < chunk.length; i++) {
    const raw = chunk[i]!;
    if (isSectionLine(raw)) break;
    const lineNo = offset + i + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) {
      commit();
      continue;
    }
    const hash = raw.indexOf('#');
    const content = hash === -1 ? raw : raw.slice(0, hash);
    if (pending) {
      // A `\` continuation: the next line's text is appended.
      pending.value += content.trim();
    } else {
      const colon = content.indexOf(':');
      if (colon === -1) {
        const fw = firstWord(raw);
        diagnostics.push(
          error('recipe-header-syntax', `header line '${trimmed}' is not 'Key: value'`, {
            location: at(lineNo, fw.column + 1, trimmed.length),
            hint: "header lines are 'Key: value' (e.g. 'From: debian:bookworm'); sections start with '%' (e.g. '%post')",
          }),
        );
        continue;
      }
      const keyRaw = content.slice(0, colon);
      const key = keyRaw.trim();
      const keyCol = keyRaw.length - keyRaw.trimStart().length + 1;
      const afterColon = content.slice(colon + 1);
      const valueCol = colon + 2 + (afterColon.length - afterColon.trimStart().length);
      pending = { key, lower: key.toLowerCase(), value: afterColon.trim(), line: lineNo, keyCol, valueCol };
    }
    if (pending.value.endsWith('\\')) {
      pending.value = pending.value.slice(0, -1);
      if (pending.value.endsWith('\\n')) pending.value = pending.value.slice(0, -2) + '\n';
      continue;
    }
    commit();
  }
  commit();

  // Sections.
  while (i < chunk.length) {
    const raw = chunk[i]!;
    const lineNo = offset + i + 1;
    const fw = firstWord(raw);
    const name = fw.word.slice(1).toLowerCase();
    // The body runs to the next section line or the end of the stage.
    let j = i + 1;
    while (j < chunk.length && !isSectionLine(chunk[j]!)) j++;
    const bodyLines = chunk.slice(i + 1, j);
    while (bodyLines.length > 0 && isBlank(bodyLines[bodyLines.length - 1]!)) bodyLines.pop();
    const body = bodyLines.join('\n');
    const location = at(lineNo, fw.column + 1, fw.word.length);
    i = j;

    if (name === '') {
      const next = firstWord(fw.rest).word.toLowerCase();
      const meant = isSectionName(next) || isAppSectionName(next) ? `%${next}` : didYouMean(`%${next}`, ALL_SECTIONS);
      diagnostics.push(
        error('recipe-unknown-section', `'${`% ${fw.rest}`.trim()}' is not a section name (a space after %)`, {
          location: at(lineNo, fw.column + 1, Math.max(1, fw.rest.length + 2)),
          hint: meant ? `did you mean '${meant}'?` : `section names follow '%' directly: ${ALL_SECTIONS.join(' ')}`,
        }),
      );
      continue;
    }
    if (isSectionName(name)) {
      sections.push({ name, args: fw.rest.trim(), location, bodyLine: lineNo + 1, body });
      continue;
    }
    if (isAppSectionName(name)) {
      const app = firstWord(fw.rest);
      if (app.word === '') {
        diagnostics.push(
          error('recipe-app-name-missing', `%${name} needs an app name`, {
            location,
            hint: `write '%${name} NAME' (SCIF apps: every %app* section names its app)`,
          }),
        );
        continue;
      }
      sections.push({ name, app: app.word, args: app.rest.trim(), location, bodyLine: lineNo + 1, body });
      continue;
    }
    const meant = didYouMean(`%${name}`, ALL_SECTIONS);
    diagnostics.push(
      error('recipe-unknown-section', `%${fw.word.slice(1)} is not a section`, {
        location,
        hint: meant ? `did you mean '${meant}'?` : `the sections are ${ALL_SECTIONS.join(' ')}`,
      }),
    );
  }

  checkHeader(header, diagnostics);
  const bootstrap = header.get('bootstrap')?.value.toLowerCase();
  const stageName = header.get('stage')?.value;
  return {
    index: stageIndex,
    ...(stageName ? { name: stageName } : {}),
    line: offset + 1,
    header,
    ...(bootstrap !== undefined ? { bootstrap } : {}),
    sections,
  };
}

function checkHeader(header: ReadonlyMap<string, HeaderField>, diagnostics: Diagnostic[]): void {
  for (const [lower, field] of header) {
    if (!isHeaderKey(lower)) {
      const spelled = HEADER_KEYS.filter((k) => k !== 'otherurl').map((k) => ownValue(HEADER_KEY_SPELLING, k) ?? k);
      const meant = didYouMean(field.key, spelled);
      diagnostics.push(
        error('recipe-unknown-header', `unknown header keyword '${field.key}'`, {
          location: field.location,
          hint: meant ? `did you mean '${meant}'?` : `header keywords are ${spelled.join(', ')}`,
        }),
      );
    }
  }
  const bootstrap = header.get('bootstrap');
  if (!bootstrap) return;
  const agent = bootstrap.value.toLowerCase();
  const info = ownValue(AGENTS, agent);
  if (!info) {
    const meant = didYouMean(agent, Object.keys(AGENTS));
    diagnostics.push(
      error('recipe-unknown-agent', `unknown bootstrap agent '${bootstrap.value}'`, {
        location: bootstrap.valueLocation,
        hint: meant ? `did you mean '${meant}'?` : `bootstrap agents are ${Object.keys(AGENTS).join(', ')}`,
      }),
    );
    return;
  }
  for (const key of info.required) {
    if (!header.get(key)?.value) {
      const spelled = ownValue(HEADER_KEY_SPELLING, key) ?? key;
      diagnostics.push(
        error('recipe-missing-header', `'Bootstrap: ${agent}' needs a '${spelled}:' header`, {
          location: bootstrap.location,
          hint: key === 'from' ? `add a line such as '${spelled}: debian:bookworm'` : `add a line such as '${spelled}: bookworm'`,
        }),
      );
    }
  }
}

function checkStages(stages: readonly Stage[], at: At, diagnostics: Diagnostic[]): void {
  const seen = new Map<string, Stage>();
  for (const stage of stages) {
    if (stage.name === undefined) continue;
    const first = seen.get(stage.name);
    if (first) {
      const field = stage.header.get('stage')!;
      diagnostics.push(
        error('recipe-duplicate-stage', `stage '${stage.name}' is defined twice`, {
          location: field.valueLocation,
          related: [{ message: 'first defined here', location: first.header.get('stage')!.valueLocation }],
          hint: 'give each stage its own name',
        }),
      );
    } else seen.set(stage.name, stage);
  }
  for (const stage of stages) {
    const earlier = stages.filter((s) => s.index < stage.index && s.name !== undefined).map((s) => s.name!);
    for (const section of stage.sections) {
      if (section.name !== 'files' || section.args === '') continue;
      const m = /^from\s+(\S+)\s*$/i.exec(section.args);
      if (!m) {
        diagnostics.push(
          error('recipe-files-args', `unexpected arguments to %files: '${section.args}'`, {
            location: section.location,
            hint: "the only argument %files takes is 'from STAGE' (copy from an earlier stage)",
          }),
        );
        continue;
      }
      const target = m[1]!;
      if (!earlier.includes(target)) {
        const line = section.location.line;
        const col = (section.location.sourceLine ?? '').indexOf(target) + 1;
        const isLater = stages.some((s) => s.name === target);
        const meant = didYouMean(target, earlier);
        diagnostics.push(
          error('recipe-unknown-stage', isLater ? `%files from '${target}': that stage comes later` : `%files from an unknown stage '${target}'`, {
            location: at(line, Math.max(1, col), target.length),
            hint: isLater
              ? 'a stage can copy only from stages defined before it'
              : meant
                ? `did you mean '${meant}'?`
                : earlier.length > 0
                  ? `stages defined before this one: ${earlier.join(', ')}`
                  : "name the stage to copy from with a 'Stage: NAME' header line",
          }),
        );
      }
    }
    // Parse %files lines now so that their syntax errors are reported with everything else.
    filesBlocks(stage, diagnostics);
  }
}
