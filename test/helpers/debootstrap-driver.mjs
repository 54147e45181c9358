// Runs debootstrapSource (the built one, dist/) once and prints its result as one JSON line.
// Used by test/integration/debian-bootstrap-userns.test.ts as a test user inside `unshare`.
// Usage: node debootstrap-driver.mjs REPO_ROOT STORE_DIR SUITE
const [repo, dir, suite] = process.argv.slice(2);
const { Store } = await import(`${repo}/dist/store/store.js`);
const { debootstrapSource } = await import(`${repo}/dist/builder/debootstrap-source.js`);
const store = await Store.open({ dir });
const events = [];
const r = await debootstrapSource({ suite, include: [] }, { store, onEvent: (e) => (e.type === 'debootstrap-output' ? process.stderr.write(e.chunk) : events.push(e)) });
process.stdout.write(JSON.stringify({ result: r, events, uidMap: (await import('node:fs')).readFileSync('/proc/self/uid_map', 'utf8') }) + '\n');
