import type { SourceLocation } from '../core/diagnostic.js';

/** Sections of the image itself (Singularity 2.4 and Apptainer). */
export const SECTION_NAMES = [
  'pre',
  'setup',
  'files',
  'environment',
  'post',
  'runscript',
  'startscript',
  'test',
  'labels',
  'help',
  'arguments',
] as const;
export type SectionName = (typeof SECTION_NAMES)[number];

/** SCIF app sections: each takes an app name (`%appinstall foo`). */
export const APP_SECTION_NAMES = [
  'appinstall',
  'appfiles',
  'appenv',
  'apprun',
  'applabels',
  'apphelp',
  'apptest',
  'appstart',
] as const;
export type AppSectionName = (typeof APP_SECTION_NAMES)[number];

export type AnySectionName = SectionName | AppSectionName;

export function isSectionName(name: string): name is SectionName {
  return (SECTION_NAMES as readonly string[]).includes(name);
}

export function isAppSectionName(name: string): name is AppSectionName {
  return (APP_SECTION_NAMES as readonly string[]).includes(name);
}

/** One `Key: value` line of a stage's header (a `\` continuation folds into it). */
export interface HeaderField {
  /** The key as written (`BootStrap`); lookups use the lower-case form. */
  readonly key: string;
  readonly value: string;
  /** Where the key is. */
  readonly location: SourceLocation;
  /** Where the value starts (for errors about the value). */
  readonly valueLocation: SourceLocation;
}

/** One occurrence of a section in the file. Repeated sections stay separate here; accessors append them. */
export interface Section {
  readonly name: AnySectionName;
  /** App name for `%app*` sections. */
  readonly app?: string;
  /** What follows the name (and the app name) on the section line: `-c /bin/bash`, `from build`. */
  readonly args: string;
  /** The `%name` line. */
  readonly location: SourceLocation;
  /** 1-based line of the body's first line (the line after the section line). */
  readonly bodyLine: number;
  /** The body as written, trailing blank lines dropped, lines joined with `\n`. */
  readonly body: string;
}

/** One source → destination line of `%files` or `%appfiles`. */
export interface FileEntry {
  readonly src: string;
  /** Empty when the line names only a source (copied to the same path). */
  readonly dst: string;
  readonly location: SourceLocation;
}

export interface FilesBlock {
  /** `%files from STAGE`: the stage to copy from; absent for host files. */
  readonly fromStage?: string;
  readonly fromLocation?: SourceLocation;
  /** `%appfiles NAME`. */
  readonly app?: string;
  readonly entries: readonly FileEntry[];
}

export interface Label {
  readonly key: string;
  readonly value: string;
  readonly location: SourceLocation;
}

/** One build stage: a header and its sections. A single-stage recipe has exactly one. */
export interface Stage {
  readonly index: number;
  /** `Stage: NAME`, if given. */
  readonly name?: string;
  /** 1-based line where the stage starts. */
  readonly line: number;
  /** Header fields by lower-case key, in file order. */
  readonly header: ReadonlyMap<string, HeaderField>;
  /** Lower-case bootstrap agent, if there is a `Bootstrap:` line. */
  readonly bootstrap?: string;
  readonly sections: readonly Section[];
}

/** A parsed definition file. Pure data: no templating applied unless `resolved`. */
export interface Recipe {
  readonly file: string;
  readonly text: string;
  readonly stages: readonly Stage[];
  /** True when `{{ var }}` placeholders were substituted (see resolveRecipe). */
  readonly resolved: boolean;
  /** Build arguments substituted, by name (only those the recipe uses). */
  readonly argsUsed: Readonly<Record<string, string>>;
}
