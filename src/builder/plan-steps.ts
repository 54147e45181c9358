import type { SourceLocation } from '../core/diagnostic.js';
import type { FileEntry, Stage } from '../recipe/model.js';
import { appNames, filesBlocks, scriptOf, type Script } from '../recipe/sections.js';
import { stepKey, type StepKey, type StepKeyComponents, type StepKind } from '../store/step-key.js';
import { nameTable, ownValue } from '../core/name-table.js';

/** One step of a target's build chain, with its key. */
export interface PlannedStep {
  readonly kind: StepKind;
  readonly key: StepKey;
  readonly components: StepKeyComponents;
  /** The section(s) the step runs, for its command and for messages. */
  readonly script?: Script;
  readonly app?: string;
  /** `%files`/`%appfiles` entries the step copies, in order, with the stage they come from. */
  readonly files?: ReadonlyArray<FileEntry & { readonly fromStage?: string }>;
  /** Where the step is defined (the first section line), for messages. */
  readonly location?: SourceLocation;
  /** True for steps whose result is a snapshot (all but source and %pre). */
  readonly snapshot: boolean;
}

export interface PlanStepsInput {
  readonly stage: Stage | undefined;
  /** What identifies the source (docs/ARCHITECTURE.md, Keys): a manifest digest, a tree digest, ... */
  readonly source: unknown;
  readonly platform: string;
  /** Build arguments the recipe uses. */
  readonly buildArgs: Readonly<Record<string, string>>;
  /** Digest of each host file or folder named by `%files`/`%appfiles`, by its path as written. */
  readonly inputDigests: Readonly<Record<string, string>>;
  /** Final keys of the other stages of a multi-stage recipe, by name. */
  readonly stageKeys: Readonly<Record<string, string>>;
  /** Extra files the target declares (`inputs:` in the manifest), by path: they key the %post step. */
  readonly declaredInputs?: Readonly<Record<string, string>>;
  /** Everything that shapes /.singularity.d besides the sections (the recipe text, the tool version). */
  readonly metadataSalt: unknown;
}

/** Host paths a stage's `%files`/`%appfiles` read (to be hashed before planning). */
export function hostFileInputs(stage: Stage): string[] {
  const out = new Set<string>();
  for (const block of filesBlocks(stage)) if (block.fromStage === undefined) for (const e of block.entries) out.add(e.src);
  return [...out];
}

function pick(record: Readonly<Record<string, string>>, keys: Iterable<string>): Record<string, string> {
  const out = nameTable<string>();
  for (const k of keys) {
    const v = ownValue(record, k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function argsIn(text: string, buildArgs: Readonly<Record<string, string>>): Record<string, string> {
  // Templating has been applied already; what a step "uses" is what its section text contained
  // before substitution. We key on the substituted text, so the args are recorded for `plan` only.
  return Object.fromEntries(Object.entries(buildArgs).filter(([, v]) => v !== '' && text.includes(v)));
}

/**
 * The chain of steps of one stage (docs/ARCHITECTURE.md, Keys, Steps): source → %pre → %setup → %files → %post
 * → per SCIF app (%appfiles, %appinstall) → metadata. Each key covers its parent's, so a change
 * reruns that step and what follows, nothing before.
 */
export function planSteps(input: PlanStepsInput): PlannedStep[] {
  const steps: PlannedStep[] = [];
  const { stage, platform } = input;
  const push = (
    kind: StepKind,
    extra: Omit<StepKeyComponents, 'parent' | 'kind' | 'platform'>,
    more: Omit<PlannedStep, 'kind' | 'key' | 'components' | 'snapshot'> = {},
  ): void => {
    const components: StepKeyComponents = { parent: steps.at(-1)?.key ?? null, kind, platform, ...extra };
    steps.push({ kind, key: stepKey(components), components, snapshot: kind !== 'source' && kind !== 'pre', ...more });
  };
  const scriptStep = (kind: StepKind, script: Script | undefined, extra: { app?: string; inputs?: Readonly<Record<string, string>> } = {}): void => {
    if (!script) return;
    push(
      kind,
      {
        text: script.text,
        args: script.args,
        buildArgs: argsIn(script.text, input.buildArgs),
        ...(extra.app !== undefined ? { app: extra.app } : {}),
        ...(extra.inputs && Object.keys(extra.inputs).length > 0 ? { inputs: extra.inputs } : {}),
      },
      { script, ...(extra.app !== undefined ? { app: extra.app } : {}), ...(script.sections[0] ? { location: script.sections[0].location } : {}) },
    );
  };
  const filesStep = (kind: 'files' | 'appfiles', app?: string): void => {
    if (!stage) return;
    const blocks = filesBlocks(stage).filter((b) => (kind === 'files' ? b.app === undefined : b.app === app));
    const entries = blocks.flatMap((b) => b.entries.map((e) => ({ ...e, ...(b.fromStage !== undefined ? { fromStage: b.fromStage } : {}) })));
    if (entries.length === 0) return;
    const hostSrcs = entries.filter((e) => e.fromStage === undefined).map((e) => e.src);
    const stages = [...new Set(entries.flatMap((e) => (e.fromStage !== undefined ? [e.fromStage] : [])))];
    const firstSection = stage.sections.find((s) => s.name === kind && (app === undefined || s.app === app));
    push(
      kind,
      {
        text: entries.map((e) => `${e.fromStage !== undefined ? `${e.fromStage}:` : ''}${e.src} -> ${e.dst}`).join('\n'),
        inputs: pick(input.inputDigests, hostSrcs),
        ...(stages.length > 0 ? { stages: pick(input.stageKeys, stages) } : {}),
        ...(app !== undefined ? { app } : {}),
      },
      { files: entries, ...(app !== undefined ? { app } : {}), ...(firstSection ? { location: firstSection.location } : {}) },
    );
  };

  push('source', { source: input.source });
  if (stage) {
    scriptStep('pre', scriptOf(stage, 'pre'));
    scriptStep('setup', scriptOf(stage, 'setup'));
    filesStep('files');
    scriptStep('post', scriptOf(stage, 'post'), { ...(input.declaredInputs ? { inputs: input.declaredInputs } : {}) });
    for (const app of appNames(stage)) {
      filesStep('appfiles', app);
      scriptStep('appinstall', scriptOf(stage, 'appinstall', app), { app });
    }
  }
  push('metadata', { source: input.metadataSalt });
  return steps;
}
