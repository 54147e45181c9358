// The base image of the build benchmark: Debian's static busybox with a link per applet, /etc
// basics and FILES small text files under /usr/share/bench (default 2,000, ~4 MiB), one gzip layer,
// pushed with orchestrator's registry client. Usage: node bench/push-base-image.mjs HOST:PORT REPO:TAG [FILES]
// Prints the manifest digest.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { parseReference } from '../dist/registry/reference.js';
import { RegistryClient } from '../dist/registry/registry-client.js';

const [host, name, filesArg] = process.argv.slice(2);
if (!host || !name) {
  console.error('usage: node bench/push-base-image.mjs HOST:PORT REPO:TAG [FILES]');
  process.exit(2);
}
const files = Number(filesArg ?? 2000);
const sha = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
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

const pack = tar.pack();
const chunks = [];
const done = new Promise((resolve, reject) => {
  pack.on('data', (c) => chunks.push(c));
  pack.on('end', resolve);
  pack.on('error', reject);
});
for (const e of entries) await new Promise((resolve, reject) => pack.entry(e.h, e.data ?? '', (err) => (err ? reject(err) : resolve())));
pack.finalize();
await done;
const tarBytes = Buffer.concat(chunks);
const gz = gzipSync(tarBytes, { level: 6 });
const config = Buffer.from(
  JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [sha(tarBytes)] },
    history: [{ created: '2023-11-14T22:13:20Z', created_by: 'bench/push-base-image.mjs' }],
  }),
);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(gz), size: gz.length }],
  }),
);
const ref = parseReference(`docker://${host}/${name}`);
if (!ref.ok) throw new Error(ref.error.message);
const client = new RegistryClient();
for (const b of [gz, config]) {
  const r = await client.pushBlob(ref.value, b);
  if (!r.ok) throw new Error(r.error.message);
}
const m = await client.pushManifest(ref.value, manifest, 'application/vnd.oci.image.manifest.v1+json');
if (!m.ok) throw new Error(m.error.message);
await client.close();
console.log(m.value);
