// The worker thread of loadProject for big manifests (see WORKER_THRESHOLD): it loads the
// manifest named by workerData and posts the result (a LoadProjectResult: plain data) back.
import { parentPort, workerData } from 'node:worker_threads';
import { displayPath, loadManifestFile, type LoadProjectOptions } from './load-project.js';
import { manifestPath } from './manifest-name.js';

const options = workerData as LoadProjectOptions;
const file = manifestPath(options.cwd, options);
parentPort!.postMessage(await loadManifestFile({ ...options, file, shown: displayPath(options.cwd, file) }));
