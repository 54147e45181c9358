/**
 * Bootstrap agents: which header keys each one needs, and which ones this version builds.
 * Singularity 2.4 and Apptainer accept all of these; orchestrator builds the `supported` ones and
 * says plainly that the others are not supported yet.
 */
export interface AgentInfo {
  readonly required: readonly string[];
  readonly supported: boolean;
}

export const AGENTS: Readonly<Record<string, AgentInfo>> = {
  docker: { required: ['from'], supported: true },
  localimage: { required: ['from'], supported: true },
  oci: { required: ['from'], supported: true },
  'oci-archive': { required: ['from'], supported: true },
  'docker-archive': { required: ['from'], supported: true },
  scratch: { required: [], supported: true },
  debootstrap: { required: ['osversion'], supported: true },
  'docker-daemon': { required: ['from'], supported: false },
  library: { required: ['from'], supported: false },
  shub: { required: ['from'], supported: false },
  oras: { required: ['from'], supported: true },
  yum: { required: [], supported: false },
  dnf: { required: [], supported: false },
  zypper: { required: [], supported: false },
  busybox: { required: [], supported: false },
  arch: { required: [], supported: false },
  sif: { required: ['from'], supported: false },
};

/** Header keys Apptainer accepts (lower case); `otherurlN` stands for OtherURL1, OtherURL2, ... */
export const HEADER_KEYS = [
  'bootstrap',
  'from',
  'includecmd',
  'mirrorurl',
  'updateurl',
  'osversion',
  'include',
  'library',
  'registry',
  'namespace',
  'stage',
  'product',
  'user',
  'regcode',
  'productpgp',
  'registerurl',
  'modules',
  'otherurl',
  'fingerprints',
  'confurl',
  'setopt',
] as const;

/** Spelling of header keys in messages and suggestions. */
export const HEADER_KEY_SPELLING: Readonly<Record<string, string>> = {
  bootstrap: 'Bootstrap',
  from: 'From',
  includecmd: 'IncludeCmd',
  mirrorurl: 'MirrorURL',
  updateurl: 'UpdateURL',
  osversion: 'OSVersion',
  include: 'Include',
  library: 'Library',
  registry: 'Registry',
  namespace: 'Namespace',
  stage: 'Stage',
  product: 'Product',
  user: 'User',
  regcode: 'Regcode',
  productpgp: 'ProductPGP',
  registerurl: 'RegisterURL',
  modules: 'Modules',
  otherurl: 'OtherURL1',
  fingerprints: 'Fingerprints',
  confurl: 'ConfURL',
  setopt: 'SetOpt',
};

export function isHeaderKey(lowerKey: string): boolean {
  if ((HEADER_KEYS as readonly string[]).includes(lowerKey)) return lowerKey !== 'otherurl';
  return /^otherurl\d+$/.test(lowerKey);
}
