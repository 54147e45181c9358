import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { lastLines, type CommandOutcome } from '../core/run-command.js';
import { unreachable } from '../core/unreachable.js';
import type { InputFilter } from '../freshness/input-filter.js';
import type { StarterOp } from '../runtime/starter.js';
import { copyUpDirs } from './copy-up.js';
import type { ImageConfig } from './image-config.js';
import { LayerStack } from './layer-stack.js';
import { placeFiles } from './place-files.js';
import type { PlannedStep } from './plan-steps.js';
import { ROOT_SKELETON, singularityMetadata, type MetadataInput, type PreviousMetadata } from './singularity-metadata.js';
import { runStepSession } from './step-session.js';
import { writeTreeEntry, type TreeEntry } from './tree-entry.js';
import { ownValue } from '../core/name-table.js';
import { singleIdNamespace } from '../core/id-map.js';

export interface StepRunContext {
  /** The image before this step: earlier snapshots and the source, top first. */
  readonly lowers: readonly string[];
  /** The step's (empty) overlay upper folder and its work folder, on the store's file system. */
  readonly upper: string;
  readonly work: string;
  /** An empty folder to mount the session's tmpfs on. */
  readonly session: string;
  /** A folder for the step's scratch files (scripts, copies of resolv.conf). */
  readonly scratch: string;
  /** Folder of the recipe: relative %files sources and the cwd of %setup. */
  readonly recipeDir: string;
  readonly imageConfig: ImageConfig | undefined;
  /** Lowers of the other stages, by name, for `%files from STAGE`. */
  readonly stageLowers: Readonly<Record<string, readonly string[]>>;
  /** For the metadata step. */
  readonly metadata: Omit<MetadataInput, 'previous' | 'imageConfig'>;
  readonly logFile: string;
  readonly onOutput: (chunk: Buffer) => void;
  /** What `%files` leaves out of the host folders it copies (input-filter.ts). */
  readonly filter?: InputFilter;
  readonly signal: AbortSignal;
}

const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SCRIPT_IN_IMAGE = '.orchestrator-step.sh';
/** single-id mode's apt setting, in the step's upper only while the step runs (like the script). */
const APT_CONFIG_IN_IMAGE = '.orchestrator-apt.conf';

function shellOf(args: string): string {
  return /(?:^|\s)-c\s+(\S+)/.exec(args)?.[1] ?? '/bin/sh';
}

/** The overlay of the step's view, mounted at SESSION/root. */
function overlayOps(ctx: StepRunContext, writable: boolean): StarterOp[] {
  const root = join(ctx.session, 'root');
  return [
    { op: 'session', target: ctx.session, data: 'size=16m,mode=0755' },
    { op: 'mkdir', path: root },
    writable
      ? { op: 'overlay', target: root, lowers: ctx.lowers, upper: ctx.upper, work: ctx.work }
      : { op: 'overlay', target: root, lowers: ctx.lowers },
  ];
}

function sectionName(step: PlannedStep): string {
  return `%${step.kind}${step.app !== undefined ? ` ${step.app}` : ''}`;
}

/**
 * In single-id mode (a user namespace where only id 0 exists) chown to any other id fails with
 * EINVAL: a failure that looks like it gets the reason and the fix.
 */
function singleIdHint(output: string): string {
  if (!singleIdNamespace() || !/chown|chgrp|Invalid argument|useradd|groupadd|setgroups/i.test(lastLines(output, 20))) return '';
  return "; this build runs in single-id mode (no /etc/subuid range for you), where only id 0 exists and chown to any other id fails: ask for a range ('usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER') to build in subuid mode, or build as root";
}

function scriptFailure(name: string, where: Diagnostic['location'], outcome: CommandOutcome, logFile: string): Diagnostic | undefined {
  const tail = lastLines(outcome.output, 20);
  switch (outcome.kind) {
    case 'exited':
      if (outcome.code === 0) return undefined;
      if (outcome.code === 255 && /^starter: /m.test(outcome.output)) {
        return error('step-start-failed', `${name} could not start: ${/^starter: .*$/m.exec(outcome.output)?.[0] ?? ''}`, {
          ...(where ? { location: where } : {}),
          hint: /exec/.test(outcome.output) ? 'the image has no such shell; give the section `-c SHELL` or install one first' : `see ${logFile}`,
        });
      }
      return error('step-failed', `${name} failed with exit status ${outcome.code}${tail ? `; its last lines:\n${tail}` : ''}`, {
        ...(where ? { location: where } : {}),
        hint: `the whole log is ${logFile}${singleIdHint(outcome.output)}`,
      });
    case 'signalled':
      return error('step-failed', `${name} was killed by ${outcome.signal}`, { ...(where ? { location: where } : {}), hint: `see ${logFile}` });
    case 'aborted':
      return error('interrupted', `${name} was interrupted`, where ? { location: where } : {});
    case 'spawn-failed':
      return error('step-start-failed', `${name} could not start: ${outcome.message}`, {
        ...(where ? { location: where } : {}),
        hint: "the starter may not be built: run 'npm run build'",
      });
    default:
      return unreachable(outcome);
  }
}

/** Writes entries into the upper folder; `onlyIfMissing` skips paths the image already has. */
async function writeEntries(stack: LayerStack, upper: string, entries: readonly TreeEntry[], onlyIfMissing: boolean): Promise<void> {
  for (const e of entries) {
    if (onlyIfMissing && (await stack.entry(e.path)) !== null) continue;
    const parent = dirname(e.path);
    await copyUpDirs(stack, upper, parent === '.' ? '' : parent);
    await writeTreeEntry(join(upper, e.path), e);
  }
}

async function readFromStack(stack: LayerStack, rel: string): Promise<string | undefined> {
  const resolved = await stack.resolve(rel);
  if (resolved === null) return undefined;
  const e = await stack.entry(resolved);
  if (!e || !e.stats.isFile()) return undefined;
  return readFile(join(stack.layers[e.layer]!, resolved), 'utf8');
}

/** What an image built earlier (a local image, another target) already has in /.singularity.d. */
export async function previousMetadata(stack: LayerStack): Promise<PreviousMetadata | undefined> {
  const read = (p: string) => readFromStack(stack, `.singularity.d/${p}`);
  const [environment, runscript, startscript, test, help, labels, dockerEnv] = await Promise.all([
    read('env/90-environment.sh'),
    read('runscript'),
    read('startscript'),
    read('test'),
    read('runscript.help'),
    read('labels.json'),
    read('env/10-docker2singularity.sh'),
  ]);
  if ([environment, runscript, labels].every((x) => x === undefined)) return undefined;
  let parsedLabels: Record<string, string> | undefined;
  try {
    parsedLabels = labels ? (JSON.parse(labels) as Record<string, string>) : undefined;
  } catch {
    parsedLabels = undefined;
  }
  return {
    ...(environment !== undefined ? { environment } : {}),
    ...(runscript !== undefined ? { runscript } : {}),
    ...(startscript !== undefined ? { startscript } : {}),
    ...(test !== undefined ? { test } : {}),
    ...(help !== undefined ? { help } : {}),
    ...(parsedLabels ? { labels: parsedLabels } : {}),
    ...(dockerEnv !== undefined ? { dockerEnv } : {}),
  };
}

/** The environment of %post/%appinstall (docs/ARCHITECTURE.md, Steps): clean, plus the source image's Env. */
export function buildEnvironment(config: ImageConfig | undefined, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: HOST_PATH, HOME: '/root', TERM: 'xterm', LANG: 'C' };
  for (const kv of config?.env ?? []) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return {
    ...env,
    DEBIAN_FRONTEND: 'noninteractive',
    SINGULARITY_ENVIRONMENT: '/.singularity.d/env/91-environment.sh',
    APPTAINER_ENVIRONMENT: '/.singularity.d/env/91-environment.sh',
    ...extra,
  };
}

/**
 * Runs one step whose snapshot is not in the store, into ctx.upper. Over 80 lines on purpose: one
 * case per step kind, each a few lines of mounts and a command, read best side by side (and the
 * runtime's process handling changes here; a split would scatter it).
 */
export async function runStep(step: PlannedStep, ctx: StepRunContext): Promise<Result<void, Diagnostic>> {
  const stack = new LayerStack(ctx.lowers);
  const logOptions = { logFile: ctx.logFile, onOutput: ctx.onOutput, signal: ctx.signal };
  switch (step.kind) {
    case 'source':
    case 'pre':
      return ok(undefined);
    case 'setup': {
      const script = join(ctx.scratch, 'setup.sh');
      await writeFile(script, `${step.script?.text ?? ''}\n`);
      const root = join(ctx.session, 'root');
      const outcome = await runStepSession({
        ops: overlayOps(ctx, true),
        command: [shellOf(step.script?.args ?? ''), '-e', '-x', script],
        cwd: [ctx.recipeDir, '/'],
        env: { PATH: process.env['PATH'] ?? HOST_PATH, HOME: process.env['HOME'] ?? '/root', SINGULARITY_ROOTFS: root, APPTAINER_ROOTFS: root },
        ...logOptions,
      });
      const failure = scriptFailure(sectionName(step), step.location, outcome, ctx.logFile);
      return failure ? fail(failure) : ok(undefined);
    }
    case 'files':
    case 'appfiles': {
      const files = step.files ?? [];
      // Host files first, then copies from other stages, in the order written.
      const host = files.filter((f) => f.fromStage === undefined);
      const r = await placeFiles({ entries: host, baseDir: ctx.recipeDir, stack, upper: ctx.upper, ...(ctx.filter ? { filter: ctx.filter } : {}), signal: ctx.signal });
      if (!r.ok) return r;
      for (const stageName of [...new Set(files.flatMap((f) => (f.fromStage !== undefined ? [f.fromStage] : [])))]) {
        const lowers = ownValue(ctx.stageLowers, stageName);
        if (!lowers) return fail(error('unexpected', `stage '${stageName}' was not built`));
        const from = new LayerStack(lowers);
        const placed = await placeFiles({
          entries: files.filter((f) => f.fromStage === stageName),
          baseDir: '/',
          stack,
          upper: ctx.upper,
          signal: ctx.signal,
          expand: async (pattern) => {
            const resolved = await from.resolve(pattern);
            if (resolved === null) return [];
            const e = await from.entry(resolved);
            return e ? [join(from.layers[e.layer]!, resolved)] : [];
          },
        });
        if (!placed.ok) return placed;
      }
      return ok(undefined);
    }
    case 'post':
    case 'appinstall': {
      const scriptText = `${step.script?.text ?? ''}\n`;
      // Mount points and the folder of $SINGULARITY_ENVIRONMENT, where the image lacks them.
      await writeEntries(stack, ctx.upper, ROOT_SKELETON, true);
      await copyUpDirs(stack, ctx.upper, '.singularity.d/env');
      const appDir = step.app !== undefined ? `scif/apps/${step.app}` : undefined;
      if (appDir) for (const d of [appDir, `${appDir}/bin`, `${appDir}/lib`, `${appDir}/scif`]) await copyUpDirs(stack, ctx.upper, d);
      const scriptPath = join(ctx.upper, SCRIPT_IN_IMAGE);
      await writeFile(scriptPath, scriptText, { mode: 0o700 });
      const resolvConf = join(ctx.scratch, 'resolv.conf');
      const hosts = join(ctx.scratch, 'hosts');
      await copyFile('/etc/resolv.conf', resolvConf).catch(() => writeFile(resolvConf, ''));
      await copyFile('/etc/hosts', hosts).catch(() => writeFile(hosts, '127.0.0.1 localhost\n'));
      const root = join(ctx.session, 'root');
      const extra: Record<string, string> = {};
      // single-id mode: apt drops privileges to _apt, which does not exist in the namespace; an
      // APT_CONFIG of the session's (never part of the image) keeps it root, as Apptainer's users do.
      const aptConfig = singleIdNamespace() ? join(ctx.upper, APT_CONFIG_IN_IMAGE) : undefined;
      if (aptConfig) {
        await writeFile(aptConfig, 'APT::Sandbox::User "root";\n', { mode: 0o644 });
        extra['APT_CONFIG'] = `/${APT_CONFIG_IN_IMAGE}`;
      }
      if (step.app !== undefined) {
        Object.assign(extra, { SCIF_APPNAME: step.app, SCIF_APPROOT: `/scif/apps/${step.app}`, SCIF_APPDATA: `/scif/data/${step.app}` });
      }
      const outcome = await runStepSession({
        ops: [
          ...overlayOps(ctx, true),
          { op: 'proc', target: join(root, 'proc') },
          { op: 'bind', source: '/sys', target: join(root, 'sys'), flags: ['ro', 'optional'] },
          { op: 'bind', source: '/dev', target: join(root, 'dev'), flags: ['optional'] },
          { op: 'bind', source: resolvConf, target: join(root, 'etc/resolv.conf'), flags: ['ro', 'mkpoint'] },
          { op: 'bind', source: hosts, target: join(root, 'etc/hosts'), flags: ['ro', 'mkpoint'] },
          { op: 'pivot', newRoot: root },
        ],
        command: [shellOf(step.script?.args ?? ''), '-e', '-x', `/${SCRIPT_IN_IMAGE}`],
        cwd: appDir ? [`/${appDir}`, '/'] : ['/'],
        env: buildEnvironment(ctx.imageConfig, extra),
        ...logOptions,
      });
      // The script never stays in the image (it exists only in this upper, so no whiteout is needed).
      await rm(scriptPath, { force: true });
      if (aptConfig) await rm(aptConfig, { force: true });
      const failure = scriptFailure(sectionName(step), step.location, outcome, ctx.logFile);
      return failure ? fail(failure) : ok(undefined);
    }
    case 'metadata': {
      const previous = await previousMetadata(stack);
      const entries = singularityMetadata({
        ...ctx.metadata,
        ...(ctx.imageConfig ? { imageConfig: ctx.imageConfig } : {}),
        ...(previous ? { previous } : {}),
      });
      await writeEntries(stack, ctx.upper, ROOT_SKELETON, true);
      await writeEntries(stack, ctx.upper, entries, false);
      return ok(undefined);
    }
    default:
      return unreachable(step.kind);
  }
}

/** Runs %test on the finished image: an ephemeral overlay, through the test action. */
export async function runTest(
  ctx: Pick<StepRunContext, 'lowers' | 'session' | 'scratch' | 'logFile' | 'onOutput' | 'signal' | 'imageConfig'>,
  location: Diagnostic['location'],
): Promise<Result<void, Diagnostic>> {
  const root = join(ctx.session, 'root');
  const outcome = await runStepSession({
    ops: [
      { op: 'session', target: ctx.session, data: 'size=256m,mode=0755' },
      { op: 'mkdir', path: root },
      { op: 'mkdir', path: join(ctx.session, 'upper') },
      { op: 'mkdir', path: join(ctx.session, 'work') },
      { op: 'overlay', target: root, lowers: ctx.lowers, upper: join(ctx.session, 'upper'), work: join(ctx.session, 'work') },
      { op: 'proc', target: join(root, 'proc') },
      { op: 'bind', source: '/dev', target: join(root, 'dev'), flags: ['optional'] },
      { op: 'pivot', newRoot: root },
    ],
    command: ['/bin/sh', '/.singularity.d/actions/test'],
    cwd: ['/'],
    env: { PATH: HOST_PATH, HOME: '/root', LANG: 'C' },
    logFile: ctx.logFile,
    onOutput: ctx.onOutput,
    signal: ctx.signal,
  });
  const failure = scriptFailure('%test', location, outcome, ctx.logFile);
  return failure ? fail(failure) : ok(undefined);
}

