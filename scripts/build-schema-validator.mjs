// Compiles schemas/manifest.schema.json into a standalone validator (dist/manifest/manifest-validator.cjs)
// so that reading a manifest does not load and compile ajv at every run: `up` on an unchanged
// project must answer in well under 150 ms. src/manifest/schema-check.ts falls back to compiling
// the schema with ajv when this file is absent (tests that run from src/).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { Ajv2020 } = require('ajv/dist/2020');
const standaloneCode = require('ajv/dist/standalone').default;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const schema = JSON.parse(readFileSync(join(root, 'schemas', 'manifest.schema.json'), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true, code: { source: true } });
ajv.addKeyword('x-pattern-message');
const validate = ajv.compile(schema);
const out = join(root, 'dist', 'manifest', 'manifest-validator.cjs');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, standaloneCode(ajv, validate));
