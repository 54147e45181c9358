import { error, LineIndex, type Diagnostic } from '../core/diagnostic.js';
import { didYouMean } from '../core/did-you-mean.js';
import type { Recipe } from './model.js';
import { parseRecipe } from './parse-recipe.js';
import { argumentsOf } from './sections.js';
import { nameTable } from '../core/name-table.js';

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

export interface ResolveRecipeResult {
  readonly recipe: Recipe;
  readonly diagnostics: readonly Diagnostic[];
}

/**
 * Applies `{{ NAME }}` templating as Apptainer does: values come from the build arguments given
 * (manifest `args`, target `args`, the command line), else from `%arguments` defaults of any stage
 * (a later default overrides an earlier one). An undefined name is an error at its placeholder.
 * Lines of `%arguments` sections are not templated. The result is parsed again, so every location
 * still points into the file as written.
 */
export function resolveRecipe(recipe: Recipe, options: { args: Readonly<Record<string, string>> }): ResolveRecipeResult {
  const diagnostics: Diagnostic[] = [];
  const values = new Map<string, string>();
  for (const d of argumentsOf(recipe.stages, diagnostics)) values.set(d.name, d.value);
  for (const [k, v] of Object.entries(options.args)) values.set(k, v);

  // Line ranges of %arguments bodies, which are left as written.
  const skip = new Set<number>();
  for (const stage of recipe.stages) {
    for (const s of stage.sections) {
      if (s.name !== 'arguments') continue;
      const n = s.body === '' ? 0 : s.body.split('\n').length;
      for (let k = 0; k < n; k++) skip.add(s.bodyLine + k);
    }
  }

  const index = new LineIndex(recipe.file, recipe.text);
  const used = nameTable<string>();
  const lines = recipe.text.split('\n');
  const out = lines.map((line, k) => {
    const lineNo = k + 1;
    if (skip.has(lineNo) || !line.includes('{{')) return line;
    return line.replace(PLACEHOLDER, (whole: string, name: string, offset: number) => {
      const value = values.get(name);
      if (value === undefined) {
        const meant = didYouMean(name, values.keys());
        diagnostics.push(
          error('recipe-undefined-argument', `build argument '${name}' is not defined`, {
            location: index.at(lineNo, offset + 1, whole.length),
            hint: meant
              ? `did you mean '${meant}'?`
              : `give it a default in %arguments (${name}=...) or a value in orchestrator.yaml 'args'`,
          }),
        );
        return whole;
      }
      if (value.includes('\n')) {
        diagnostics.push(
          error('recipe-argument-newline', `build argument '${name}' contains a line break`, {
            location: index.at(lineNo, offset + 1, whole.length),
            hint: 'build arguments are substituted inside one line; use a single-line value',
          }),
        );
        return whole;
      }
      used[name] = value;
      return value;
    });
  });

  const reparsed = parseRecipe(out.join('\n'), { file: recipe.file });
  diagnostics.push(...reparsed.diagnostics);
  return { recipe: { ...reparsed.recipe, resolved: true, argsUsed: used }, diagnostics };
}
