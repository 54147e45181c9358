/** One parsed `WWW-Authenticate` challenge: `Bearer realm="...",service="...",scope="..."`. */
export interface AuthChallenge {
  readonly scheme: 'bearer' | 'basic';
  readonly params: Readonly<Record<string, string>>;
}

/** The first Bearer or Basic challenge in a `WWW-Authenticate` header, if any. */
export function parseAuthChallenge(header: string | string[] | undefined): AuthChallenge | undefined {
  const values = Array.isArray(header) ? header : header === undefined ? [] : [header];
  for (const value of values) {
    const m = /^\s*(Bearer|Basic)\b\s*(.*)$/i.exec(value);
    if (!m) continue;
    const params: Record<string, string> = {};
    const re = /([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
    let p: RegExpExecArray | null;
    while ((p = re.exec(m[2] ?? '')) !== null) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
    return { scheme: m[1]!.toLowerCase() === 'bearer' ? 'bearer' : 'basic', params };
  }
  return undefined;
}
