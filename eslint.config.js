// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * The import directions of docs/ARCHITECTURE.md ("Folders and import directions"), read from its
 * table, as lint rules: an editor shows a wrong arrow as it is typed. test/unit/architecture.test.ts
 * checks the same table over the whole import graph (dynamic imports and cycles too).
 */
function importDirections() {
  const doc = readFileSync(new URL('./docs/ARCHITECTURE.md', import.meta.url), 'utf8');
  const section = doc.split('\n## Folders and import directions\n')[1]?.split('\n## ')[0] ?? '';
  const folders = readdirSync(new URL('./src/', import.meta.url), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  const configs = [];
  for (const [, folder, mayImport] of section.matchAll(/^\|\s*`([a-z0-9-]+)`\s*\|.*\|(.*)\|\s*$/gm)) {
    if (mayImport.trim() === 'every folder') continue;
    const allowed = new Set([folder, ...[...mayImport.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1])]);
    const denied = folders.filter((f) => !allowed.has(f));
    if (denied.length === 0) continue;
    const message = `docs/ARCHITECTURE.md (Folders and import directions): src/${folder} may not import this folder`;
    configs.push({
      files: [`src/${folder}/**/*.ts`],
      rules: { 'no-restricted-imports': ['error', { patterns: [{ group: denied.flatMap((d) => [`../${d}/*`, `../../${d}/*`]), message }] }] },
    });
  }
  return configs;
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'native/**/build/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      'no-console': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Only the CLI and the reporters may print; tests, benchmarks and scripts are tools, not core.
    files: ['src/cli/**', 'src/report/**', 'test/**', 'bench/**', 'scripts/**', 'bin/**'],
    rules: { 'no-console': 'off' },
  },
  ...importDirections(),
);
