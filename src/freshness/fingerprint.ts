import { isAbsolute, join } from 'node:path';
import { canonicalJson, sha256Digest, type Digest } from '../core/digest.js';
import type { LockData } from '../lock/lock-file.js';
import type { SourceRef, Target } from '../manifest/project.js';
import type { Recipe, Stage } from '../recipe/model.js';
import { filesBlocks } from '../recipe/sections.js';
import { formatPlatform } from '../registry/platform.js';
import type { Platform } from '../registry/media-types.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { CACHE_SCHEMA_VERSION } from '../store/step-key.js';
import type { StatIndex } from './stat-index.js';
import { inputIdentity, pathIdentity } from './tree-digest.js';
import type { InputFilter } from './input-filter.js';
import type { ReadSet } from './read-set.js';
import { nameTable } from '../core/name-table.js';

/** Where a component is written, for explanations ("%post changed at recipes/app.def:14"). */
export interface Located {
  readonly value: string;
  readonly file?: string;
  readonly line?: number;
}

/**
 * What a target's key is made of (docs/ARCHITECTURE.md, Keys), kept in the project state so that `plan` can
 * say exactly what changed. Everything is a string, so that comparing two records is plain.
 */
export interface TargetComponents {
  readonly tool: string;
  /** The source as written (`docker://debian:bookworm`, `target:base`, `recipe`) and what it resolves to now. */
  readonly source: { readonly text: string; readonly id: string };
  /** Header fields of every stage: `[stage/]Key` → value. */
  readonly header: Readonly<Record<string, Located>>;
  /** Section texts: `[stage/]%name[ app]` → sha256 of the text and arguments. */
  readonly sections: Readonly<Record<string, Located>>;
  readonly args: Readonly<Record<string, string>>;
  /** Files the build reads (`%files` sources, declared `inputs`): path as written → digest. */
  readonly inputs: Readonly<Record<string, string>>;
  readonly format: Readonly<Record<string, string>>;
}

export interface Fingerprint {
  readonly key: Digest;
  readonly components: TargetComponents;
}

/**
 * pathIdentity, remembered for the run in `ctx.memo`: a folder many targets are built from is
 * walked once. The caller forgets a path when it writes it (a target's output).
 */
function identityOf(path: string, ctx: FingerprintContext): Promise<string> {
  ctx.reads?.add(path);
  // Images (sources, outputs) are whole: the input filter is for what the build reads as files.
  const { filter: _filter, ...options } = ctx;
  if (!ctx.memo) return pathIdentity(path, options);
  let known = ctx.memo.get(path);
  if (!known) {
    known = pathIdentity(path, options);
    ctx.memo.set(path, known);
  }
  return known;
}

export interface FingerprintContext {
  /** Identities already computed in this run, by absolute path. */
  readonly memo?: Map<string, Promise<string>>;
  readonly projectDir: string;
  readonly lock: LockData;
  readonly platform: Platform;
  readonly index?: StatIndex;
  /** Output paths of the other targets, for `from: target:NAME`. */
  readonly outputOf: (target: string) => string | undefined;
  readonly toolVersion: string;
  readonly signal?: AbortSignal;
  /** Every path the fingerprint reads is added here (the no-op witness of `up`). */
  readonly reads?: ReadSet;
  /** What inputs leave out (input-filter.ts): applied to `%files` sources and `inputs`. */
  readonly filter?: InputFilter;
}


function pinned(refText: string, ctx: FingerprintContext, extra: { registry?: string; namespace?: string } = {}): string {
  const parsed = parseReference(refText, extra);
  if (!parsed.ok) return 'invalid';
  if (parsed.value.digest !== undefined) return parsed.value.digest;
  const entry = ctx.lock.images[formatReference(parsed.value)];
  return entry?.platforms[formatPlatform(ctx.platform)] ?? 'unresolved';
}

/** An `oras://` SIF: the manifest digest it is pinned to in orchestrator.lock (or its own digest). */
function orasPinned(refText: string, ctx: FingerprintContext): string {
  const parsed = parseReference(refText);
  if (!parsed.ok) return 'invalid';
  if (parsed.value.digest !== undefined) return parsed.value.digest;
  return ctx.lock.images[`oras://${parsed.value.canonical}`]?.digest ?? 'unresolved';
}

async function fromIdentity(from: SourceRef, ctx: FingerprintContext): Promise<string> {
  switch (from.kind) {
    case 'docker':
      return pinned(from.ref, ctx);
    case 'oras':
      return orasPinned(from.ref, ctx);
    case 'path':
      return identityOf(from.path, ctx);
    case 'target': {
      const out = ctx.outputOf(from.target);
      return out === undefined ? 'missing' : identityOf(out, ctx);
    }
    case 'oci':
      return identityOf(join(from.dir, 'index.json'), ctx);
    case 'oci-archive':
    case 'docker-archive':
      return identityOf(from.file, ctx);
    default: {
      const never: never = from;
      return String(never);
    }
  }
}

async function headerIdentity(stage: Stage, recipeDir: string, ctx: FingerprintContext): Promise<string> {
  const get = (k: string) => stage.header.get(k)?.value;
  switch (stage.bootstrap) {
    case 'docker':
      return pinned(get('from') ?? '', ctx, {
        ...(get('registry') !== undefined ? { registry: get('registry')! } : {}),
        ...(get('namespace') !== undefined ? { namespace: get('namespace')! } : {}),
      });
    case 'oras':
      return orasPinned(get('from') ?? '', ctx);
    case 'localimage': {
      const p = get('from') ?? '';
      return identityOf(isAbsolute(p) ? p : join(recipeDir, p), ctx);
    }
    case 'oci':
    case 'oci-archive':
    case 'docker-archive': {
      const p = (get('from') ?? '').replace(/:[^/:]*$/, (m) => (stage.bootstrap === 'oci' ? '' : m));
      const abs = isAbsolute(p) ? p : join(recipeDir, p);
      return identityOf(stage.bootstrap === 'oci' ? join(abs, 'index.json') : abs, ctx);
    }
    case 'scratch':
      return 'scratch';
    case 'debootstrap':
      return canonicalJson({ suite: get('osversion'), mirror: get('mirrorurl') ?? 'host', include: get('include') ?? '' });
    default:
      return 'unsupported';
  }
}

/**
 * A target's fingerprint: computed without building and without the network (registry tags come
 * from orchestrator.lock), cheap on an unchanged tree (files are hashed through the stat index).
 */
export async function targetFingerprint(target: Target, recipe: Recipe | undefined, ctx: FingerprintContext): Promise<Fingerprint> {
  const header = nameTable<Located>();
  const sections = nameTable<Located>();
  const inputs = nameTable<string>();
  const recipeDir = target.recipe ? join(target.recipe, '..') : ctx.projectDir;
  const file = recipe?.file;
  let sourceText = target.from?.text ?? 'recipe';
  let sourceId: string;
  if (target.from) sourceId = await fromIdentity(target.from, ctx);
  else {
    const last = recipe?.stages.at(-1);
    sourceText = last ? `Bootstrap: ${last.bootstrap ?? '?'}${last.header.get('from') ? ` From: ${last.header.get('from')!.value}` : ''}` : 'none';
    sourceId = last ? await headerIdentity(last, recipeDir, ctx) : 'none';
  }
  const stages = recipe?.stages ?? [];
  for (const [i, stage] of stages.entries()) {
    const prefix = stages.length > 1 ? `${stage.name ?? `stage${i + 1}`}/` : '';
    for (const f of stage.header.values()) header[`${prefix}${f.key}`] = { value: f.value, ...(file ? { file } : {}), line: f.location.line };
    // Earlier stages' sources are part of the image too.
    if (i < stages.length - 1) header[`${prefix}(source)`] = { value: await headerIdentity(stage, recipeDir, ctx) };
    const texts = new Map<string, { text: string; line: number }>();
    for (const s of stage.sections) {
      const name = `${prefix}%${s.name}${s.app !== undefined ? ` ${s.app}` : ''}`;
      const prev = texts.get(name);
      texts.set(name, { text: `${prev ? `${prev.text}\n` : ''}${s.args}\n${s.body}`, line: prev?.line ?? s.location.line });
    }
    for (const [name, t] of texts) sections[name] = { value: sha256Digest(t.text), ...(file ? { file } : {}), line: t.line };
    for (const block of filesBlocks(stage)) {
      if (block.fromStage !== undefined) continue;
      for (const e of block.entries) {
        inputs[e.src] = await inputIdentity(recipeDir, e.src, ctx);
      }
    }
  }
  for (const p of target.inputs) {
    if (p.startsWith('target:')) {
      const out = ctx.outputOf(p.slice('target:'.length));
      inputs[p] = out === undefined ? 'missing' : await identityOf(out, ctx);
    } else inputs[p] = await inputIdentity(ctx.projectDir, p, ctx);
  }
  const components: TargetComponents = {
    tool: `${ctx.toolVersion}/${CACHE_SCHEMA_VERSION}`,
    source: { text: sourceText, id: sourceId },
    header,
    sections,
    args: recipe?.argsUsed ?? {},
    inputs,
    format: {
      format: target.format,
      ...(target.size !== undefined ? { size: String(target.size) } : {}),
      test: String(target.test),
      platform: formatPlatform(ctx.platform),
      // How the image is written: another writer, compressor, level or block size gives other bytes.
      ...(target.squashfs !== undefined
        ? {
            'squashfs writer': target.squashfs.writer,
            'squashfs compression': target.squashfs.compression,
            ...(target.squashfs.level !== undefined ? { 'squashfs level': String(target.squashfs.level) } : {}),
            'squashfs block size': String(target.squashfs.blockSize),
          }
        : {}),
    },
  };
  return { key: sha256Digest(canonicalJson(components)), components };
}


/** Whether a source, as the fingerprint writes it, is a registry image (pinned in orchestrator.lock). */
function isRegistrySource(text: string | undefined): boolean {
  return text !== undefined && (text.startsWith('docker://') || text.startsWith('oras://') || /^Bootstrap: (docker|oras)\b/i.test(text));
}

/**
 * Whether what a target is made of changed while it was built, from its components before the
 * build and after it. The only thing a build itself changes is a registry pin (a tag resolved and
 * written to orchestrator.lock); any other difference means a file the build read changed under
 * it, so the output may not match either version and must not be recorded as the newer one.
 */
export function changedWhileBuilding(before: TargetComponents, after: TargetComponents): boolean {
  const { source: s1, header: h1, ...rest1 } = before;
  const { source: s2, header: h2, ...rest2 } = after;
  if (canonicalJson(rest1) !== canonicalJson(rest2)) return true;
  if (s1.text !== s2.text || (s1.id !== s2.id && !isRegistrySource(s1.text))) return true;
  for (const key of new Set([...Object.keys(h1), ...Object.keys(h2)])) {
    const a = h1[key];
    const b = h2[key];
    if (canonicalJson(a ?? null) === canonicalJson(b ?? null)) continue;
    // An earlier stage's source: a registry pin may move, as the target's own source may.
    if (key.endsWith('(source)')) {
      const prefix = key.slice(0, -'(source)'.length);
      const agent = Object.entries(h1).find(([k]) => k.toLowerCase() === `${prefix}bootstrap`.toLowerCase())?.[1].value;
      if (agent !== undefined && /^(docker|oras)$/i.test(agent)) continue;
    }
    return true;
  }
  return false;
}
