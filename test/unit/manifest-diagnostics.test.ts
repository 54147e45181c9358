import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { runCliInProcess } from '../helpers/cli.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/manifests/', import.meta.url));

/**
 * Each broken manifest under test/fixtures/manifests/ and the exact text `validate` prints for it
 * (run in the fixture's folder, so the file is named `orchestrator.yaml`).
 */
const EXPECTED: Record<string, string> = {
  'bad-format': `orchestrator.yaml:5:13: error: invalid format 'squahsfs' for target 'app': expected sandbox, ext3, squashfs or sif
      format: squahsfs
              ^~~~~~~~
  hint: did you mean 'squashfs'?
1 error
`,
  'bad-name': `orchestrator.yaml:3:3: error: invalid target name 'My_App'
    My_App:
    ^~~~~~
  hint: use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit
1 error
`,
  'bad-size': `orchestrator.yaml:6:11: error: invalid size '10M' for target 'scratch'
      size: 10M
            ^~~
  hint: write 10MiB (powers of 1024) or 10MB (powers of 1000)
1 error
`,
  'bad-source': `orchestrator.yaml:4:11: error: unknown source scheme 'dockr:' in 'from' of target 'app'
      from: dockr://alpine:3.20
            ^~~~~~~~~~~~~~~~~~~
  hint: did you mean 'docker://REF'?
orchestrator.yaml:7:11: error: unknown source scheme 'alpine:' in 'from' of target 'tool'
      from: alpine:3.20
            ^~~~~~~~~~~
  hint: for a registry image write 'docker://alpine:3.20'; for a local file whose name has a colon, start it with './'
2 errors
`,
  'cycle': `orchestrator.yaml:3:3: error: dependency cycle: a → c → b → a
    a:
    ^
orchestrator.yaml:4:11: note: 'a' is built from 'c'
      from: target:c
            ^~~~~~~~
orchestrator.yaml:10:11: note: 'c' is built from 'b'
      from: target:b
            ^~~~~~~~
orchestrator.yaml:7:11: note: 'b' is built from 'a'
      from: target:a
            ^~~~~~~~
  hint: a target cannot be built from itself; change one of these 'from' lines
1 error
`,
  'duplicate-key': `orchestrator.yaml:6:5: error: duplicate key 'format'
      format: sandbox
      ^~~~~~
  hint: each key may appear once in a mapping; merge the two entries
1 error
`,
  'duplicate-output': `orchestrator.yaml:8:13: error: targets 'app' and 'app-debug' both write 'dist/app.simg'
      output: dist/app.simg
              ^~~~~~~~~~~~~
orchestrator.yaml:5:13: note: target 'app' writes it here
      output: dist/app.simg
              ^~~~~~~~~~~~~
  hint: give target 'app-debug' another 'output'
1 error
`,
  'format-mismatch': `orchestrator.yaml:6:13: error: output 'dist/app.simg' of target 'app' names a squashfs image, but its format is sandbox
      output: dist/app.simg
              ^~~~~~~~~~~~~
orchestrator.yaml:5:13: note: format sandbox is set here
      format: sandbox
              ^~~~~~~
  hint: write 'output: dist/app/', or 'format: squashfs'
1 error
`,
  'missing-format': `orchestrator.yaml:3:3: error: target 'app' needs a format
    app:
    ^~~
  hint: add 'format: sandbox', 'format: ext3', 'format: squashfs' or 'format: sif', or end the output with '/' (sandbox), '.img' (ext3), '.simg' (squashfs) or '.sif' (SIF)
orchestrator.yaml:7:13: error: cannot tell the format of target 'tool' from its output 'dist/tool'
      output: dist/tool
              ^~~~~~~~~
  hint: add 'format: sandbox', 'format: ext3', 'format: squashfs' or 'format: sif', or end the output with '/' (sandbox), '.img' (ext3), '.simg' (squashfs) or '.sif' (SIF)
2 errors
`,
  'missing-recipe': `orchestrator.yaml:4:13: error: recipe file 'recipes/ap.def' not found
      recipe: recipes/ap.def
              ^~~~~~~~~~~~~~
  hint: did you mean 'app.def'?
1 error
`,
  'missing-source': `orchestrator.yaml:3:3: error: target 'app' has neither 'from' nor 'recipe'
    app:
    ^~~
  hint: add 'from: docker://IMAGE' (or another source), or 'recipe: FILE' with a Bootstrap header
1 error
`,
  'missing-version': `orchestrator.yaml:1:1: error: missing required key 'version' at the top level
  targets:
  ^~~~~~~~
  hint: add 'version: 1' at the top of the file
1 error
`,
  'output-inside-sandbox': `orchestrator.yaml:8:13: error: output 'build/dev/app.simg' of target 'app' is inside the sandbox of target 'dev'
      output: build/dev/app.simg
              ^~~~~~~~~~~~~~~~~~
orchestrator.yaml:3:3: note: target 'dev' writes its sandbox by default
    dev:
    ^~~
  hint: a sandbox build replaces its whole folder ('build/dev/'); move the output out of it
1 error
`,
  'several-errors': `orchestrator.yaml:6:5: error: 'size' applies only to ext3 images, but target 'base' is sandbox
      size: 1GiB
      ^~~~
orchestrator.yaml:5:13: note: format sandbox is set here
      format: sandbox
              ^~~~~~~
  hint: remove 'size', or use 'format: ext3'
orchestrator.yaml:8:11: error: unknown target 'bsae' in 'from' of target 'app'
      from: target:bsae
            ^~~~~~~~~~~
  hint: did you mean 'base'?
orchestrator.yaml:9:13: error: recipe file 'recipes/app.def' not found
      recipe: recipes/app.def
              ^~~~~~~~~~~~~~~
  hint: the folder 'recipes' does not exist either
orchestrator.yaml:10:13: error: invalid format 'squahsfs' for target 'app': expected sandbox, ext3, squashfs or sif
      format: squahsfs
              ^~~~~~~~
  hint: did you mean 'squashfs'?
orchestrator.yaml:13:5: error: unknown key 'outptu' in target 'worker'
      outptu: dist/worker.simg
      ^~~~~~
  hint: did you mean 'output'?
orchestrator.yaml:15:18: error: unknown target or group 'wroker' in group 'default'
    default: [app, wroker]
                   ^~~~~~
  hint: did you mean 'worker'?
6 errors
`,
  'size-not-ext3': `orchestrator.yaml:6:5: error: 'size' applies only to ext3 images, but target 'app' is squashfs
      size: 1GiB
      ^~~~
orchestrator.yaml:5:13: note: format squashfs is set here
      format: squashfs
              ^~~~~~~~
  hint: remove 'size' (a squashfs image is as large as its content), or use 'format: ext3'
1 error
`,
  'unknown-group-member': `orchestrator.yaml:10:18: error: unknown target or group 'wroker' in group 'default'
    default: [api, wroker]
                   ^~~~~~
  hint: did you mean 'worker'?
1 error
`,
  'unknown-key': `orchestrator.yaml:5:5: error: unknown key 'formt' in target 'app'
      formt: squashfs
      ^~~~~
  hint: did you mean 'format'?
1 error
`,
  'unknown-target': `orchestrator.yaml:7:11: error: unknown target 'bse' in 'from' of target 'app'
      from: target:bse
            ^~~~~~~~~~
  hint: did you mean 'base'?
1 error
`,
  'wrong-type': `orchestrator.yaml:6:11: error: expected true or false for 'test' of target 'app', got the string 'yes'
      test: yes
            ^~~
  hint: YAML 1.2 reads only true and false as booleans
orchestrator.yaml:7:13: error: expected a list for 'inputs' of target 'app', got the string 'data/*.csv'
      inputs: data/*.csv
              ^~~~~~~~~~
2 errors
`,
  'yaml-syntax': `orchestrator.yaml:5:28: error: YAML: flow sequence in block collection must be sufficiently indented and end with a ]
      output: [build/app.simg
                             ^
1 error
`,
};

describe('validate on broken manifests', () => {
  for (const [name, expected] of Object.entries(EXPECTED)) {
    it(`reports ${name} exactly and exits 2`, async () => {
      const r = await runCliInProcess(['validate'], { cwd: FIXTURES + name });
      expect(r.stderr).toBe(expected);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(2);
    });
  }
});
