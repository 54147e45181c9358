import { isAbsolute, join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import type { SourceRef } from '../manifest/project.js';
import type { Stage } from '../recipe/model.js';
import type { Platform } from '../registry/media-types.js';
import type { RegistryClient } from '../registry/registry-client.js';
import type { RegistryEventListener } from '../registry/registry-events.js';
import type { Store } from '../store/store.js';
import type { SourceOrigin, SourceSpec } from './build-source.js';
import type { DebootstrapEventListener } from './debootstrap-source.js';
import type { TagPins } from './registry-source.js';
import { ownValue } from '../core/name-table.js';

export interface SourceResolverOptions {
  readonly store: Store;
  /** Made on first use (no registry is contacted, nor its client loaded, for local builds). */
  readonly client: () => Promise<RegistryClient>;
  readonly platform?: Platform;
  readonly pins?: TagPins;
  readonly onRegistryEvent?: RegistryEventListener;
  /** Outputs of other targets, by name (for `from: target:NAME`). */
  readonly targetOutputs?: Readonly<Record<string, string>>;
  /** Progress of `Bootstrap: debootstrap` (made once per suite, mirror, include list and arch, then cached). */
  readonly onDebootstrapEvent?: DebootstrapEventListener;
  /** debootstrap's whole output is appended here. */
  readonly debootstrapLogFile?: string;
  readonly signal?: AbortSignal;
}

/**
 * Turns where a build starts — a recipe header (`Bootstrap: docker`, `From: ...`) or a manifest
 * `from:` — into a source the engine can stack overlays on.
 */
export class SourceResolver {
  constructor(readonly options: SourceResolverOptions) {}

  async #registry(text: string, extra: { registry?: string; namespace?: string; location?: Diagnostic['location'] } = {}): Promise<Result<SourceSpec, Diagnostic>> {
    const o = this.options;
    const { registrySource } = await import('./registry-source.js');
    return registrySource(text, {
      store: o.store,
      client: await o.client(),
      ...(o.platform ? { platform: o.platform } : {}),
      ...(o.pins ? { pins: o.pins } : {}),
      ...(o.onRegistryEvent ? { onEvent: o.onRegistryEvent } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(extra.registry !== undefined ? { registry: extra.registry } : {}),
      ...(extra.namespace !== undefined ? { namespace: extra.namespace } : {}),
      ...(extra.location ? { location: extra.location } : {}),
    });
  }

  /** An `oras://` SIF (`Bootstrap: oras` or `from: oras://`): pulled into the store, pinned like docker://, used as a local image. */
  async #oras(text: string, location?: Diagnostic['location']): Promise<Result<SourceSpec, Diagnostic>> {
    const o = this.options;
    const { orasSource } = await import('./oras-source.js');
    return orasSource(text, { store: o.store, client: await o.client(), ...(o.pins ? { pins: o.pins } : {}), ...(o.platform ? { platform: o.platform } : {}), ...(o.signal ? { signal: o.signal } : {}), ...(location ? { location } : {}) });
  }

  /** The source a recipe stage's header names. */
  async header(stage: Stage, recipeDir: string): Promise<Result<SourceSpec, Diagnostic>> {
    const field = stage.header.get('bootstrap');
    const from = stage.header.get('from');
    const path = (p: string) => (isAbsolute(p) ? p : join(recipeDir, p));
    switch (stage.bootstrap) {
      case 'scratch':
        return ok({ kind: 'scratch' });
      case 'docker':
        return this.#registry(from!.value, {
          ...(stage.header.get('registry') ? { registry: stage.header.get('registry')!.value } : {}),
          ...(stage.header.get('namespace') ? { namespace: stage.header.get('namespace')!.value } : {}),
          location: from!.valueLocation,
        });
      case 'localimage':
        return ok({ kind: 'local', path: path(from!.value) });
      case 'oras':
        return this.#oras(from!.value, from!.valueLocation);
      case 'oci':
      case 'oci-archive':
      case 'docker-archive': {
        const [file, tag] = stage.bootstrap === 'oci' ? splitTag(from!.value) : [from!.value, undefined];
        return (await import('./oci-source.js')).ociSource({ kind: stage.bootstrap, path: path(file), ...(tag !== undefined ? { tag } : {}) }, { store: this.options.store, ...(this.options.signal ? { signal: this.options.signal } : {}) });
      }
      case 'debootstrap': {
        const { debootstrapRequest, debootstrapSource } = await import('./debootstrap-source.js');
        const request = debootstrapRequest(stage);
        if (!request.ok) return request;
        const o = this.options;
        return debootstrapSource(request.value, {
          store: o.store,
          ...(o.debootstrapLogFile !== undefined ? { logFile: o.debootstrapLogFile } : {}),
          ...(o.onDebootstrapEvent ? { onEvent: o.onDebootstrapEvent } : {}),
          ...(o.signal ? { signal: o.signal } : {}),
        });
      }
      default:
        return fail(
          error('recipe-agent-unsupported', `bootstrap agent '${field?.value ?? '(none)'}' is not supported yet`, {
            ...(field ? { location: field.valueLocation } : {}),
            hint: "give the target a 'from:' in orchestrator.yaml, which takes the place of the header's source",
          }),
        );
    }
  }

  /** The source a manifest `from:` names, with its origin for the image's labels. */
  async fromRef(ref: SourceRef): Promise<Result<SourceSpec, Diagnostic>> {
    const r = await this.#fromRef(ref);
    return r.ok ? ok({ ...r.value, origin: originOf(ref) }) : r;
  }

  async #fromRef(ref: SourceRef): Promise<Result<SourceSpec, Diagnostic>> {
    switch (ref.kind) {
      case 'docker':
        return this.#registry(ref.ref);
      case 'oras':
        return this.#oras(ref.ref);
      case 'path':
        return ok({ kind: 'local', path: ref.path });
      case 'target': {
        const out = ownValue(this.options.targetOutputs, ref.target);
        if (out === undefined) return fail(error('unexpected', `the output of target '${ref.target}' is not known`));
        return ok({ kind: 'local', path: out });
      }
      case 'oci':
        return (await import('./oci-source.js')).ociSource({ kind: 'oci', path: ref.dir, ...(ref.tag !== undefined ? { tag: ref.tag } : {}) }, { store: this.options.store, ...(this.options.signal ? { signal: this.options.signal } : {}) });
      case 'oci-archive':
      case 'docker-archive':
        return (await import('./oci-source.js')).ociSource({ kind: ref.kind, path: ref.file }, { store: this.options.store, ...(this.options.signal ? { signal: this.options.signal } : {}) });
      default: {
        const never: never = ref;
        return fail(error('unexpected', `unknown source ${JSON.stringify(never)}`));
      }
    }
  }
}

/** A manifest `from:` as a recipe header would say it: `docker://debian:bookworm` is `Bootstrap: docker`, `From: debian:bookworm`. */
export function originOf(ref: SourceRef): SourceOrigin {
  switch (ref.kind) {
    case 'docker':
      return { bootstrap: 'docker', from: ref.ref };
    case 'oras':
      return { bootstrap: 'oras', from: ref.ref };
    case 'path':
    case 'target':
      return { bootstrap: 'localimage', from: ref.text };
    case 'oci':
    case 'oci-archive':
    case 'docker-archive':
      return { bootstrap: ref.kind, from: ref.text.slice(ref.kind.length + 1) };
    default: {
      const never: never = ref;
      return never;
    }
  }
}

/** `DIR:TAG` of an `oci:` reference (the tag is optional; a `:` inside the path is kept). */
export function splitTag(text: string): [string, string | undefined] {
  const i = text.lastIndexOf(':');
  if (i <= 0 || text.slice(i + 1).includes('/')) return [text, undefined];
  return [text.slice(0, i), text.slice(i + 1)];
}
