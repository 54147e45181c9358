// The base image of the build benchmark: Debian's static busybox with a link per applet, /etc
// basics and FILES small text files under /usr/share/bench (default 2,000, ~4 MiB), one gzip layer,
// pushed to a local registry (bench/image-parts.mjs). Usage: node bench/push-base-image.mjs HOST:PORT REPO:TAG [FILES]
// Prints the manifest digest.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { imageParts, pushImage, sha, tarBuffer } from './image-parts.mjs';

const [host, name, filesArg] = process.argv.slice(2);
if (!host || !name) {
  console.error('usage: node bench/push-base-image.mjs HOST:PORT REPO:TAG [FILES]');
  process.exit(2);
}
const files = Number(filesArg ?? 2000);
const mtime = new Date(1_700_000_000_000);
const entries = [];
const dir = (n, mode = 0o755) => entries.push({ h: { name: n, type: 'directory', mode, mtime } });
const file = (n, data, mode = 0o644) => entries.push({ h: { name: n, size: data.length, mode, mtime }, data });
const link = (n, target) => entries.push({ h: { name: n, type: 'symlink', linkname: target, mode: 0o777, mtime } });

for (const d of ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'usr/share', 'usr/share/bench', 'etc', 'root', 'var', 'opt', 'home']) dir(d);
dir('tmp', 0o1777);
file('bin/busybox', readFileSync('/bin/busybox'), 0o755);
const applets = execFileSync('/bin/busybox', ['--list-full'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'bin/busybox');
for (const a of applets) link(a, `/bin/busybox`);
file('etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n'));
file('etc/group', Buffer.from('root:x:0:\nnogroup:x:65534:\n'));
file('etc/os-release', Buffer.from('NAME="bench base"\nID=bench\n'));
for (let i = 0; i < files; i++) {
  const lines = [];
  for (let j = 0; j < 40; j++) lines.push(`file ${i} line ${j}: the quick brown fox jumps over the lazy dog ${(i * 31 + j * 17) % 997}`);
  file(`usr/share/bench/f${String(i).padStart(5, '0')}.txt`, Buffer.from(lines.join('\n') + '\n'));
}

const tarBytes = await tarBuffer(entries);
const gz = gzipSync(tarBytes, { level: 6 });
const parts = imageParts(
  [{ digest: sha(gz), size: gz.length, diffId: sha(tarBytes) }],
  { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
  { history: [{ created: '2023-11-14T22:13:20Z', created_by: 'bench/push-base-image.mjs' }] },
);
console.log(await pushImage(host, name, [gz], parts));
