import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Ajv2020 as Ajv2020Class, ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { didYouMean, didYouMeanHint } from '../core/did-you-mean.js';
import type { ManifestSource } from './manifest-source.js';
import type { PathSegment } from './yaml-source.js';

/** Keys a later wave adds to a target; until then they get a clearer message than "unknown key". */
const FUTURE_TARGET_KEYS: ReadonlySet<string> = new Set(['cache']);

const SOURCE_SCHEMES = ['docker', 'oras', 'oci', 'oci-archive', 'docker-archive', 'target'] as const;
const SCHEME_SYNTAX: Readonly<Record<(typeof SOURCE_SCHEMES)[number], string>> = {
  docker: 'docker://REF',
  oras: 'oras://REF',
  oci: 'oci:DIR[:TAG]',
  'oci-archive': 'oci-archive:FILE',
  'docker-archive': 'docker-archive:FILE',
  target: 'target:NAME',
};

export const MANIFEST_SCHEMA_URL = new URL('../../schemas/manifest.schema.json', import.meta.url);

let compiled: ValidateFunction | undefined;

/**
 * The validator compiled at build time (scripts/build-schema-validator.mjs) into dist/manifest/:
 * next to this file, and found as well from the bundle in dist/bundle/.
 */
const STANDALONE = new URL('../manifest/manifest-validator.cjs', import.meta.url);

function validator(): ValidateFunction {
  if (compiled !== undefined) return compiled;
  const require = createRequire(import.meta.url);
  if (existsSync(STANDALONE)) {
    const mod = require(STANDALONE.pathname) as ValidateFunction | { default: ValidateFunction };
    compiled = typeof mod === 'function' ? mod : mod.default;
    return compiled;
  }
  // Running from src/ (tests): compile the schema now, with the same options as the build.
  const { Ajv2020 } = require('ajv/dist/2020') as { Ajv2020: typeof Ajv2020Class };
  const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
  ajv.addKeyword('x-pattern-message');
  compiled = ajv.compile(JSON.parse(readFileSync(MANIFEST_SCHEMA_URL, 'utf8')) as object);
  return compiled;
}

function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** How a path reads in a message: `'format' of target 'hello'`, `member 2 of group 'all'`. */
export function describePath(path: readonly PathSegment[]): string {
  const [a, b, c, d] = path.map(String);
  if (a === undefined) return 'the manifest';
  if (a === 'targets' || a === 'templates') {
    const kind = a === 'targets' ? 'target' : 'template';
    if (b === undefined) return `'${a}'`;
    if (c === undefined) return `${kind} '${b}'`;
    if (c === 'args' && d !== undefined) return `arg '${d}' of ${kind} '${b}'`;
    if (c === 'inputs' && d !== undefined) return `input ${Number(d) + 1} of ${kind} '${b}'`;
    if (c === 'inherits' && d !== undefined) return `entry ${Number(d) + 1} of 'inherits' of ${kind} '${b}'`;
    if (c === 'matrix' && d !== undefined) return `'matrix.${path.slice(3).map(String).join('.')}' of ${kind} '${b}'`;
    return `'${c}' of ${kind} '${b}'`;
  }
  if (a === 'groups') {
    if (b === undefined) return "'groups'";
    if (c === undefined) return `group '${b}'`;
    return `member ${Number(c) + 1} of group '${b}'`;
  }
  if (a === 'args' && b !== undefined) return `arg '${b}'`;
  if (a === 'outputs' && b === 'outside' && c !== undefined) return `entry ${Number(c) + 1} of 'outputs.outside'`;
  return `'${path.map(String).join('.')}'`;
}

function where(path: readonly PathSegment[]): string {
  const d = describePath(path);
  return d === 'the manifest' ? 'at the top level' : `in ${d}`;
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  null: 'nothing',
};

function expectedType(type: unknown): string {
  const types = Array.isArray(type) ? type.map(String) : [String(type)];
  const names = types.map((t) => TYPE_NAMES[t] ?? t);
  return names.length <= 1 ? (names[0] ?? 'a value') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

/** `the string 'yes'`, `a list`, `nothing` */
function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string '${value}'`;
  if (typeof value === 'number') return `the number ${value}`;
  return String(value);
}

function show(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value);
}

export function fromPatternDiagnostic(value: string, label: string): { message: string; hint?: string } {
  if (/\s/.test(value)) return { message: `invalid source '${value}' in ${label}: it contains whitespace` };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(value)?.[1];
  if (scheme === 'target') {
    const name = value.slice('target:'.length);
    return {
      message: `invalid target name '${name}' in ${label}`,
      hint: "target names use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
    };
  }
  if (scheme !== undefined && (SOURCE_SCHEMES as readonly string[]).includes(scheme)) {
    const syntax = SCHEME_SYNTAX[scheme as (typeof SOURCE_SCHEMES)[number]];
    if (scheme === 'docker' && !value.startsWith('docker://')) {
      return { message: `invalid source '${value}' in ${label}`, hint: `write ${syntax}: docker://${value.slice('docker:'.length)}` };
    }
    return { message: `invalid source '${value}' in ${label}: expected ${syntax}` };
  }
  if (scheme !== undefined) {
    const near = didYouMean(scheme, SOURCE_SCHEMES);
    let hint: string;
    if (near !== undefined) hint = `did you mean '${SCHEME_SYNTAX[near as (typeof SOURCE_SCHEMES)[number]]}'?`;
    else if (!value.includes('//') && /^[a-z0-9._/-]+:[\w][\w.-]*$/.test(value))
      hint = `for a registry image write 'docker://${value}'; for a local file whose name has a colon, start it with './'`;
    else hint = 'sources are docker://REF, oras://REF, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, target:NAME or a path';
    return { message: `unknown source scheme '${scheme}:' in ${label}`, hint };
  }
  return { message: `invalid source '${value}' in ${label}` };
}

/**
 * Validates the manifest's data against schemas/manifest.schema.json and turns each failure into
 * one diagnostic at the YAML text it concerns.
 */
export function checkSchema(data: unknown, source: ManifestSource): Diagnostic[] {
  const validate = validator();
  if (validate(data)) return [];
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  for (const e of validate.errors ?? []) {
    if (filledLater(e, data)) continue;
    const d = mapError(e, source);
    if (d === undefined) continue;
    const key = `${d.location?.line}:${d.location?.column}:${d.reason}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(d);
  }
  return out;
}

/**
 * A pattern error on a matrix target's value that holds a `{{ KEY }}` placeholder (`from:
 * docker://python:{{ py }}`): the value is checked once filled in, for each variant (build-project).
 */
function filledLater(e: ErrorObject, data: unknown): boolean {
  if (e.keyword !== 'pattern' || typeof e.data !== 'string' || !/\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}/.test(e.data)) return false;
  const [kind, name] = pointerSegments(e.instancePath);
  if (kind !== 'targets' || name === undefined) return false;
  const targets = (data as { targets?: Record<string, unknown> } | null)?.targets;
  const target = targets !== undefined && Object.hasOwn(targets, name) ? targets[name] : undefined;
  return typeof target === 'object' && target !== null && 'matrix' in target;
}

// Long on purpose: one case per JSON Schema keyword ajv reports, each its message and location: a
// table of cases, not a flow.
function mapError(e: ErrorObject, source: ManifestSource): Diagnostic | undefined {
  const path = pointerSegments(e.instancePath);
  const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
  const label = describePath(path);
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(params['additionalProperty']);
      const allowed = Object.keys((parent['properties'] as Record<string, unknown> | undefined) ?? {});
      const isTarget = path.length === 2 && path[0] === 'targets';
      if (isTarget && FUTURE_TARGET_KEYS.has(key)) {
        return error('manifest-unsupported-key', `'${key}' in target '${path[1]}' is not supported yet`, {
          location: source.entryLocation([...path, key]),
          hint: `a later version of orchestrator adds '${key}'; allowed keys: ${allowed.join(', ')}`,
        });
      }
      return error('manifest-unknown-key', `unknown key '${key}' ${where(path)}`, {
        location: source.entryLocation([...path, key]),
        hint: didYouMeanHint(key, allowed) ?? `allowed keys: ${allowed.join(', ')}`,
      });
    }
    case 'required': {
      const key = String(params['missingProperty']);
      const hint = key === 'version' ? "add 'version: 1' at the top of the file" : key === 'targets' ? "add a 'targets:' mapping with at least one target" : undefined;
      return error('manifest-missing-key', `missing required key '${key}' ${where(path)}`, {
        location: path.length === 0 ? source.fileLocation() : source.entryLocation(path),
        hint,
      });
    }
    case 'const':
      if (path.length === 1 && path[0] === 'version') {
        return error('manifest-version', `unsupported manifest version ${show(e.data)}`, {
          location: source.valueLocation(path),
          hint: 'this orchestrator reads version 1',
        });
      }
      return error('manifest-invalid-value', `${label} must be ${show(params['allowedValue'])}, not ${show(e.data)}`, {
        location: source.valueLocation(path),
      });
    case 'enum': {
      const allowed = (params['allowedValues'] as unknown[]).map(String);
      const list = `${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]}`;
      const field = path[path.length - 1];
      if (e.data === null) {
        return error('manifest-type', `expected ${list} for ${label}, got nothing`, { location: source.valueLocation(path), hint: 'the key has no value' });
      }
      const what = path.length === 3 && (path[0] === 'targets' || path[0] === 'templates') ? `${String(field)} ${show(e.data)} for ${path[0] === 'targets' ? 'target' : 'template'} '${path[1]}'` : `${label} ${show(e.data)}`;
      return error('manifest-invalid-value', `invalid ${what}: expected ${list}`, {
        location: source.valueLocation(path),
        hint: typeof e.data === 'string' ? didYouMeanHint(e.data, allowed) : undefined,
      });
    }
    case 'type': {
      const expected = expectedType(params['type']);
      let hint: string | undefined;
      if (params['type'] === 'boolean' && typeof e.data === 'string' && /^(yes|no|on|off|y|n|True|False|TRUE|FALSE)$/.test(e.data)) {
        hint = 'YAML 1.2 reads only true and false as booleans';
      } else if (e.data === null) {
        hint = 'the key has no value';
      }
      // An entry of a mapping (propertyNames' subject) is reported at its key.
      const location = e.propertyName !== undefined ? source.entryLocation([...path, e.propertyName]) : source.valueLocation(path);
      return error('manifest-type', `expected ${expected} for ${label}, got ${describeValue(e.data)}`, { location, hint });
    }
    case 'pattern': {
      if (e.propertyName !== undefined) {
        const name = e.propertyName;
        const kind = path[0] === 'targets' ? 'target name' : path[0] === 'groups' ? 'group name' : path.includes('args') ? 'arg name' : 'name';
        return error('manifest-invalid-name', `invalid ${kind} '${name}'`, {
          location: source.entryLocation([...path, name]),
          hint: String(parent['x-pattern-message'] ?? `it must match ${String(params['pattern'])}`),
        });
      }
      const value = String(e.data);
      if (path.length === 3 && (path[0] === 'targets' || path[0] === 'templates') && path[2] === 'from') {
        const { message, hint } = fromPatternDiagnostic(value, label);
        return error('manifest-invalid-source', message, { location: source.valueLocation(path), hint });
      }
      if (path.length === 3 && (path[0] === 'targets' || path[0] === 'templates') && path[2] === 'size') {
        const m = /^(\d+)\s*([KMGT])$/i.exec(value);
        const hint = m
          ? `write ${m[1]}${m[2]!.toUpperCase()}iB (powers of 1024) or ${m[1]}${m[2]!.toUpperCase()}B (powers of 1000)`
          : String(parent['x-pattern-message']);
        return error('manifest-invalid-size', `invalid size '${value}' for target '${path[1]}'`, {
          location: source.valueLocation(path),
          hint,
        });
      }
      if (path.length === 3 && path[0] === 'groups') {
        return error('manifest-invalid-name', `invalid name '${value}' in group '${path[1]}'`, {
          location: source.valueLocation(path),
          hint: String(parent['x-pattern-message'] ?? ''),
        });
      }
      return error('manifest-invalid-value', `invalid ${label} ${show(e.data)}`, {
        location: source.valueLocation(path),
        hint: parent['x-pattern-message'] !== undefined ? String(parent['x-pattern-message']) : undefined,
      });
    }
    case 'minimum':
      return error('manifest-invalid-size', `invalid size ${show(e.data)} for target '${path[1]}': it must be at least 1 byte`, {
        location: source.valueLocation(path),
      });
    case 'minLength':
      return error('manifest-empty-value', `${label} must not be empty`, { location: source.valueLocation(path) });
    case 'minProperties':
      return error('manifest-empty-value', `${label} must not be empty`, {
        location: source.entryLocation(path),
        hint: path[0] === 'targets' ? 'declare at least one target' : undefined,
      });
    case 'propertyNames':
      // Reported by the failing name's own error.
      return undefined;
    default:
      return error('manifest-invalid-value', `${label}: ${e.message ?? 'invalid value'}`, { location: source.valueLocation(path) });
  }
}
