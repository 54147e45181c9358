// Collects bench/work/results/*.json into bench/results.json and bench/RESULTS.md and prints the
// table. The hand-written analysis in bench/NOTES.md (profiles of missed goals) is appended.
// Usage: node bench/report.mjs   (rerun it alone after editing NOTES.md)
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ORDER = ['pull', 'unpack', 'export', 'build', 'exec', 'noop'];
const dir = join(here, 'work', 'results');
const names = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)) : [];
names.sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b));
// Records written before figures carried their time get their file's time.
const figures = names.flatMap((n) => {
  const file = join(dir, `${n}.json`);
  const mtime = statSync(file).mtime.toISOString().replace(/\.\d+Z$/, 'Z');
  return JSON.parse(readFileSync(file, 'utf8')).figures.map((f) => ({ ...f, recorded: f.recorded ?? mtime }));
});

const sh = (cmd, a) => {
  try {
    return execFileSync(cmd, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n')[0];
  } catch {
    return 'not installed';
  }
};
const machine = {
  cpus: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  kernel: release(),
  node: process.version,
  tools: {
    skopeo: sh('skopeo', ['--version']),
    umoci: sh('umoci', ['--version']),
    podman: sh('podman', ['--version']),
    buildah: sh('buildah', ['--version']),
    mksquashfs: sh('mksquashfs', ['-version']),
    make: sh('make', ['--version']),
  },
};
const commit = sh('git', ['-C', here, 'rev-parse', '--short', 'HEAD']);
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
writeFileSync(join(here, 'results.json'), JSON.stringify({ date, commit, machine, figures }, null, 2) + '\n');

const loads = figures.map((f) => Number(String(f.loadavg ?? '').split(' ')[0])).filter((n) => n > 0);
const loadRange = () =>
  (loads.length ? `${Math.min(...loads)}–${Math.max(...loads)}` : 'unknown') + (loads.length < figures.length ? ` (known for ${loads.length} of ${figures.length} figures)` : '');
const dates = figures.map((f) => f.recorded).filter(Boolean).sort();
const dateRange = () => (dates.length ? `${dates[0]} to ${dates[dates.length - 1]}` : 'at unknown times');
const ms = (x) => (x >= 10000 ? `${(x / 1000).toFixed(2)} s` : `${x} ms`);
const cell = (x) => {
  if (!x) return '-';
  if (x.unavailable !== undefined) return `not available: ${x.unavailable}`;
  return `${ms(x.median)} (${ms(x.min)}–${ms(x.max)})`;
};
const metText = (f) => (f.met === null ? (f.goal.kind === 'none' ? '' : 'n/a') : f.met ? 'yes' : '**no**');
const goalText = (f) => f.goal.text + (f.goal.kind === 'overhead-ms' && f.goal.value !== null ? ` (overhead ${f.goal.value} ms)` : '');
const rows = figures.map((f) => [f.figure, cell(f.ours), f.peer ? `${f.peer.name}: ${cell(f.peer)}` : '-', f.ratio ?? '-', goalText(f), metText(f)]);
const esc = (s) => String(s).replaceAll('|', '\\|');
const table = ['| figure | ours: median (min–max) | peer: median (min–max) | ratio | goal | met? |', '|---|---|---|---|---|---|', ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');

const slower = figures.filter((f) => f.ratio !== null && f.ratio > 1 && f.peer);
const missed = figures.filter((f) => f.met === false);
const by = (f) => {
  switch (f.goal.kind) {
    case 'ratio':
      return `ratio ${f.ratio} against a goal of ${f.goal.limit} (${Math.round((f.ratio / f.goal.limit - 1) * 100)}% over)`;
    case 'ms':
      return `${ms(f.ours.median)} against ${ms(f.goal.limit)} (${ms(Math.round((f.ours.median - f.goal.limit) * 10) / 10)} over)`;
    case 'overhead-ms':
      return `overhead ${f.goal.value} ms against ${f.goal.limit} ms (${Math.round((f.goal.value - f.goal.limit) * 10) / 10} ms over)`;
    default:
      return '';
  }
};
const notes = figures.filter((f) => f.note).map((f) => `- ${f.figure}: ${f.note}`);
const analysis = existsSync(join(here, 'NOTES.md')) ? readFileSync(join(here, 'NOTES.md'), 'utf8').trim() : '';
const md = `# Benchmark results

Written by \`npm run bench\` (bench/run-all.sh) on ${date}, commit ${commit}. Each figure is the median
of several runs (min–max in brackets), ours and the peer measured interleaved in the same run;
ratio = ours / peer (below 1: we are faster). How each figure is measured: the comment at the top of
its script in bench/.

Machine: ${machine.cpus} × ${machine.cpu}, Linux ${machine.kernel}, Node ${machine.node}; 1-minute load
average when the figures were recorded: ${loadRange()} (the machine is shared: other processes' load
hits ours and the peer's runs alike, but widens the min–max ranges). Figures recorded ${dateRange()}.
Peers: ${Object.entries(machine.tools).map(([k, v]) => `${k} (${v})`).join('; ')}.

${table}

## Where a peer is faster
${slower.length === 0 ? 'Nowhere in this run.' : slower.map((f) => `- ${f.figure}: **${f.peer.name} is faster**, ${ms(f.peer.median)} against our ${ms(f.ours.median)} (${f.ratio}x).`).join('\n')}

## Goals missed
${missed.length === 0 ? 'None in this run.' : missed.map((f) => `- ${f.figure}: ${by(f)}.`).join('\n')}
${notes.length ? `\n## Notes from the scripts\n${notes.join('\n')}\n` : ''}
${analysis ? `\n${analysis}\n` : ''}`;
writeFileSync(join(here, 'RESULTS.md'), md.replace(/\n{3,}/g, '\n\n'));
console.log(`\n${table}\n\nwrote bench/RESULTS.md and bench/results.json`);
