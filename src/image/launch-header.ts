/**
 * The first line of every `.simg`/`.img` that Singularity 2.4 writes: it makes the image an
 * executable that runs itself through `run-singularity`. 31 bytes; the file system follows.
 */
export const LAUNCH_HEADER = '#!/usr/bin/env run-singularity\n';
export const LAUNCH_HEADER_BYTES = Buffer.byteLength(LAUNCH_HEADER);
