import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** One `deb` source of apt's configuration: a repository URI and the suites it serves. */
export interface AptSource {
  readonly uri: string;
  readonly suites: readonly string[];
  readonly components: readonly string[];
  /** The file it came from, for messages. */
  readonly file: string;
}

/** URIs debootstrap can fetch from (not `cdrom:`, `tor+http:` and friends). */
function usableUri(uri: string): boolean {
  return /^(https?:\/\/[^/\s]+|file:\/)/.test(uri);
}

/** One-line format (`sources.list`, `*.list`): `deb [opt=val ...] URI SUITE [COMPONENT...]`. */
function parseOneLine(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const m = /^(\S+)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)(.*)$/.exec(line);
    if (!m || m[1] !== 'deb') continue;
    out.push({ uri: m[2]!, suites: [m[3]!], components: m[4]!.trim().split(/\s+/).filter(Boolean), file });
  }
  return out;
}

/** deb822 format (`*.sources`): paragraphs of `Types:`, `URIs:`, `Suites:`, `Components:`, `Enabled:`. */
function parseDeb822(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  const paragraphs: Array<Map<string, string>> = [];
  let current = new Map<string, string>();
  let lastKey: string | undefined;
  for (const raw of text.split('\n')) {
    if (raw.startsWith('#')) continue;
    if (raw.trim() === '') {
      if (current.size > 0) paragraphs.push(current);
      current = new Map();
      lastKey = undefined;
      continue;
    }
    if (/^\s/.test(raw)) {
      // A continuation line (multi-line Signed-By keys and the like).
      if (lastKey !== undefined) current.set(lastKey, `${current.get(lastKey) ?? ''}\n${raw.trim()}`);
      continue;
    }
    const colon = raw.indexOf(':');
    if (colon <= 0) continue;
    lastKey = raw.slice(0, colon).trim().toLowerCase();
    current.set(lastKey, raw.slice(colon + 1).trim());
  }
  if (current.size > 0) paragraphs.push(current);
  const words = (v: string | undefined) => (v ?? '').split(/\s+/).filter(Boolean);
  for (const p of paragraphs) {
    if (!words(p.get('types')).includes('deb')) continue;
    if (['no', 'false', '0'].includes((p.get('enabled') ?? 'yes').toLowerCase())) continue;
    for (const uri of words(p.get('uris'))) out.push({ uri, suites: words(p.get('suites')), components: words(p.get('components')), file });
  }
  return out;
}

/** The `deb` sources of one apt configuration file (`.sources` is deb822, anything else one-line). */
export function parseAptSources(text: string, file: string): AptSource[] {
  return (file.endsWith('.sources') ? parseDeb822(text, file) : parseOneLine(text, file)).filter((s) => usableUri(s.uri));
}

/**
 * The mirror for `suite` among `sources` (in apt's order): the first one that serves that suite,
 * or else the first one at all (another release of the same distribution is usually on the same
 * mirror). Undefined when there is no usable `deb` source.
 */
export function pickMirror(sources: readonly AptSource[], suite: string): AptSource | undefined {
  return sources.find((s) => s.suites.includes(suite)) ?? sources[0];
}

/** Every `deb` source of the host's apt configuration, in the order apt reads them. */
export async function hostAptSources(options: { etcApt?: string } = {}): Promise<AptSource[]> {
  const etc = options.etcApt ?? '/etc/apt';
  const files = [join(etc, 'sources.list')];
  const dir = join(etc, 'sources.list.d');
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.list') || n.endsWith('.sources')).sort();
  files.push(...names.map((n) => join(dir, n)));
  const out: AptSource[] = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text !== undefined) out.push(...parseAptSources(text, file));
  }
  return out;
}

/** The host's apt mirror for `suite` (see pickMirror), read from /etc/apt at the time of the call. */
export async function hostAptMirror(suite: string, options: { etcApt?: string } = {}): Promise<AptSource | undefined> {
  return pickMirror(await hostAptSources(options), suite);
}
