/** The parts of an OCI/Docker image config that a Singularity image keeps (docs/ARCHITECTURE.md, Images). */
export interface ImageConfig {
  readonly env?: readonly string[];
  readonly entrypoint?: readonly string[] | null;
  readonly cmd?: readonly string[] | null;
  readonly labels?: Readonly<Record<string, string>> | null;
  readonly workingDir?: string;
  readonly user?: string;
}

/** Reads the `config` member of an OCI image config JSON (lenient: unknown members are ignored). */
export function imageConfigFromOci(json: unknown): ImageConfig {
  const root = (json ?? {}) as { config?: Record<string, unknown> };
  const c = root.config ?? {};
  const strings = (v: unknown): string[] | undefined => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined);
  const labels = c['Labels'] && typeof c['Labels'] === 'object' ? (c['Labels'] as Record<string, string>) : undefined;
  const out: { -readonly [K in keyof ImageConfig]: ImageConfig[K] } = {};
  const env = strings(c['Env']);
  if (env) out.env = env;
  const entrypoint = strings(c['Entrypoint']);
  if (entrypoint) out.entrypoint = entrypoint;
  const cmd = strings(c['Cmd']);
  if (cmd) out.cmd = cmd;
  if (labels) out.labels = labels;
  if (typeof c['WorkingDir'] === 'string' && c['WorkingDir'] !== '') out.workingDir = c['WorkingDir'];
  if (typeof c['User'] === 'string' && c['User'] !== '') out.user = c['User'];
  return out;
}
