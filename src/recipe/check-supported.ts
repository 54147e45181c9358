import { error, type Diagnostic } from '../core/diagnostic.js';
import { AGENTS } from './agents.js';
import type { Recipe } from './model.js';
import { ownValue } from '../core/name-table.js';

/**
 * What parses but cannot be built by this version: bootstrap agents that Singularity knows and
 * orchestrator does not build yet. Kept apart from parsing so that `validate` can parse any real
 * recipe and still say plainly what a build would refuse.
 */
export function checkSupported(recipe: Recipe): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const stage of recipe.stages) {
    const field = stage.header.get('bootstrap');
    if (!field || stage.bootstrap === undefined) continue;
    const info = ownValue(AGENTS, stage.bootstrap);
    if (info && !info.supported) {
      out.push(
        error('recipe-agent-unsupported', `bootstrap agent '${field.value}' is not supported yet`, {
          location: field.valueLocation,
          hint: "supported agents: docker, localimage, oci, oci-archive, docker-archive, debootstrap, scratch; or give the target a 'from:' in orchestrator.yaml, which takes the place of the header's source",
        }),
      );
    }
  }
  return out;
}
