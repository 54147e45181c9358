// Appends one figure to a bench script's JSON record (bench/work/results/NAME.json).
// Times come from files of one number (ms) per line. See lib.sh `record` for the options.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = {};
for (let i = 0; i < args.length; i += 2) {
  const k = args[i];
  if (!k?.startsWith('--') || args[i + 1] === undefined) throw new Error(`record.mjs: bad arguments near ${k}`);
  opt[k.slice(2)] = args[i + 1];
}

function stats(file) {
  const runs = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
  if (runs.length === 0 || runs.some((n) => !Number.isFinite(n))) throw new Error(`record.mjs: no times in ${file}`);
  const v = [...runs].sort((a, b) => a - b);
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median: round(median), min: round(v[0]), max: round(v[v.length - 1]), n: v.length, runs };
}
const round = (n) => Math.round(n * 10) / 10;

const ours = opt['ours-unavailable'] !== undefined ? { unavailable: opt['ours-unavailable'] } : opt.ours ? stats(opt.ours) : null;
let peer = null;
if (opt['peer-name'] !== undefined) {
  peer = { name: opt['peer-name'], ...(opt['peer-unavailable'] !== undefined ? { unavailable: opt['peer-unavailable'] } : stats(opt.peer)) };
}
const has = (x) => x !== null && x.median !== undefined;
const ratio = has(ours) && has(peer) ? Math.round((ours.median / peer.median) * 100) / 100 : null;
const kind = opt['goal-kind'] ?? 'none';
const limit = opt['goal-limit'] !== undefined ? Number(opt['goal-limit']) : null;
let met = null;
let value = null;
switch (kind) {
  case 'ratio':
    if (ratio !== null) met = ratio <= limit;
    value = ratio;
    break;
  case 'ms':
    if (has(ours)) met = ours.median <= limit;
    value = has(ours) ? ours.median : null;
    break;
  case 'overhead-ms':
    if (has(ours) && has(peer)) {
      value = round(ours.median - peer.median);
      met = value <= limit;
    }
    break;
  case 'none':
    break;
  default:
    throw new Error(`record.mjs: unknown goal kind ${kind}`);
}
const figure = {
  id: opt.id,
  bench: opt.bench,
  figure: opt.figure,
  unit: 'ms',
  ours,
  peer,
  ratio,
  goal: { text: opt.goal ?? '', kind, limit, value },
  met,
  recorded: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  ...(opt.note ? { note: opt.note } : {}),
};
const doc = existsSync(opt.out) ? JSON.parse(readFileSync(opt.out, 'utf8')) : { bench: opt.bench, figures: [] };
doc.figures = doc.figures.filter((f) => f.id !== figure.id).concat(figure);
writeFileSync(opt.out, JSON.stringify(doc, null, 2) + '\n');
const show = (x) => (x === null ? '-' : x.unavailable !== undefined ? `not available: ${x.unavailable}` : `${x.median} ms (min ${x.min}, max ${x.max}, n=${x.n})`);
console.log(`${figure.figure}\n  ours: ${show(ours)}\n  ${peer ? `${peer.name}: ${show(peer)}` : 'no peer'}${ratio !== null ? `\n  ratio: ${ratio}` : ''}${met !== null ? `\n  goal ${figure.goal.text}: ${met ? 'met' : 'MISSED'}` : ''}`);
