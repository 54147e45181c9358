import type { Diagnostic } from '../core/diagnostic.js';
import type { StepKind } from '../store/step-key.js';

/** What a build reports as it goes; reporters in src/report render these, core code never prints. */
export type BuildEvent =
  | { readonly type: 'source-ready'; readonly target: string; readonly description: string; readonly ms: number }
  /** `remote`: pulled from a remote step cache (`where` is REGISTRY/REPOSITORY), with the bytes moved. */
  | { readonly type: 'step-cached'; readonly target: string; readonly step: StepLabel; readonly key: string; readonly remote?: { readonly where: string; readonly bytes: number } }
  /**
   * What a step would do, from a probe that runs nothing (`plan --remote`): `cache` (in the local
   * store), `remote` (a cache-from repository has it: `where`), or `build` (it would run).
   */
  | { readonly type: 'step-planned'; readonly target: string; readonly step: StepLabel; readonly key: string; readonly from: 'cache' | 'remote' | 'build'; readonly where?: string }
  | { readonly type: 'step-started'; readonly target: string; readonly step: StepLabel; readonly key: string }
  | { readonly type: 'step-output'; readonly target: string; readonly step: StepLabel; readonly chunk: string }
  | { readonly type: 'step-done'; readonly target: string; readonly step: StepLabel; readonly key: string; readonly ms: number }
  | { readonly type: 'step-failed'; readonly target: string; readonly step: StepLabel; readonly error: Diagnostic; readonly ms: number }
  | { readonly type: 'test-started' | 'export-started'; readonly target: string }
  /** Said once, the build goes on (a source unpacked with owners folded, devices left out). */
  | { readonly type: 'warning'; readonly target: string; readonly diagnostic: Diagnostic }
  | { readonly type: 'test-done'; readonly target: string; readonly ms: number }
  /**
   * A squashfs export by our writer, at most every 200 ms: distinct file contents and uncompressed
   * bytes done of all, and of those bytes how many were compressed now and how many were copied
   * from the block cache (native/squashfs/README.md, Memory and progress).
   */
  | {
      readonly type: 'export-progress';
      readonly target: string;
      readonly phase: 'scan' | 'hash' | 'data' | 'fragments' | 'tables' | 'done';
      readonly files: number;
      readonly filesTotal: number;
      readonly bytes: number;
      readonly bytesTotal: number;
      readonly compressedBytes: number;
      readonly reusedBytes: number;
    }
  /**
   * `updatedInPlace`: a sandbox that got only the paths that changed (docs/ARCHITECTURE.md, Steps).
   * `squashfs`: what our writer compressed now and copied from the block cache, in uncompressed bytes.
   */
  | {
      readonly type: 'export-done';
      readonly target: string;
      readonly ms: number;
      readonly updatedInPlace?: boolean;
      readonly squashfs?: { readonly compressedBytes: number; readonly reusedBytes: number };
    };

export interface StepLabel {
  readonly kind: StepKind | 'test' | 'export';
  readonly stage?: string;
  readonly app?: string;
}

export function stepName(step: StepLabel): string {
  const base = step.kind === 'source' || step.kind === 'metadata' || step.kind === 'export' ? step.kind : `%${step.kind}`;
  return `${step.stage !== undefined ? `${step.stage}/` : ''}${base}${step.app !== undefined ? ` ${step.app}` : ''}`;
}

export type BuildEventListener = (event: BuildEvent) => void;
