import { error, type Diagnostic, type SourceLocation } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import type { Stage } from './model.js';

/** What `Bootstrap: debootstrap` asks for, from its header (checked, pure: no host access). */
export interface DebootstrapRequest {
  /** `OSVersion`: the suite (`bookworm`, `noble`). */
  readonly suite: string;
  /** `MirrorURL`; absent: the host's apt mirror is used. */
  readonly mirror?: string;
  /** `Include`: extra packages. */
  readonly include: readonly string[];
  /** Where the header is, for messages. */
  readonly location?: SourceLocation;
  readonly suiteLocation?: SourceLocation;
}

const SUITE = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const MIRROR = /^(https?:\/\/[^/\s]+\S*|file:\/\/\/\S*)$/;
const PACKAGE = /^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?$/;

/** The debootstrap request of a stage's header: `OSVersion`, `MirrorURL`, `Include`, checked. */
export function debootstrapRequest(stage: Stage): Result<DebootstrapRequest, Diagnostic> {
  const bootstrap = stage.header.get('bootstrap');
  const os = stage.header.get('osversion');
  if (!os || os.value === '') {
    return fail(error('recipe-header-missing', "'Bootstrap: debootstrap' needs 'OSVersion:' (the suite, e.g. bookworm)", { location: bootstrap?.location }));
  }
  if (!SUITE.test(os.value)) {
    return fail(error('debootstrap-bad-suite', `'${os.value}' is not a suite name`, { location: os.valueLocation, hint: 'OSVersion is a release code name such as bookworm or noble' }));
  }
  const mirrorField = stage.header.get('mirrorurl');
  const mirror = mirrorField?.value.trim();
  if (mirror !== undefined && mirror !== '' && !MIRROR.test(mirror)) {
    return fail(error('debootstrap-bad-mirror', `MirrorURL '${mirror}' is not an http://, https:// or file:/// URL`, { location: mirrorField!.valueLocation }));
  }
  const includeField = stage.header.get('include');
  const include = (includeField?.value ?? '').split(/[\s,]+/).filter(Boolean);
  for (const name of include) {
    if (!PACKAGE.test(name)) return fail(error('debootstrap-bad-include', `'${name}' in Include is not a package name`, { location: includeField!.valueLocation }));
  }
  return ok({
    suite: os.value,
    ...(mirror ? { mirror } : {}),
    include,
    ...(bootstrap ? { location: bootstrap.valueLocation } : {}),
    suiteLocation: os.valueLocation,
  });
}
