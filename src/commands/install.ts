/**
 * `release install`: the install pipeline read top-down (DESIGN steps 1-12), and its dry run.
 * Never prints or exits, and changes nothing before the checks that need no lock have passed.
 */

import type { IncrementalChanges } from '../core/build/venv.js';
import type { Context } from '../core/context.js';
import { ExitCode } from '../core/exit-codes.js';
import { parseRequest, resolveRequest, settleKind, type InstallRequest, type ParsedRequest } from '../core/build/fetch.js';
import type { SourceKindSetting } from '../core/build/source-kind.js';
import { probeRequest } from '../core/build/probe-source.js';
import type { ReleaseLock } from '../core/state/lock.js';
import { buildRelease } from '../core/build/build-release.js';
import { refuseBadRelease, refuseDowngrade, refuseMovedTag } from '../core/build/install-rules.js';
import type { GateResult } from '../core/activate/health.js';
import { failDeploy } from '../core/mutation/disk-full.js';
import { DeployJournal } from '../core/state/journal.js';
import { killPoint } from '../core/killpoint.js';
import { preflight } from '../core/build/preflight.js';
import { requireRootOnDevice, withMutation } from '../core/mutation/mutation.js';
import { completeRelease } from '../core/state/releases.js';
import { readCurrent } from '../core/state/switch.js';
import { switchVerified } from '../core/activate/verified-switch.js';
import { releaseFacts } from '../core/activate/targets.js';
import { configFile, seedConfig } from '../core/bootstrap/config-seed.js';
import { pathExists } from '../core/bootstrap/create-once.js';
import { releaseDir } from '../core/layout.js';
import { pruneReleases } from './prune.js';
import type { DataOutcome } from '../core/data/data-switch.js';

export interface InstallOptions {
  target: string;
  source?: string;
  /** Force the source's kind (default: the setting, else auto-detected). */
  sourceKind?: SourceKindSetting;
  dryRun?: boolean;
  force?: boolean;
  allowDowngrade?: boolean;
  waitSeconds?: number;
}

export interface InstallResult {
  command: 'install';
  status: 'installed' | 'already-current' | 'rolled-back' | 'degraded' | 'dry-run';
  version: string;
  previous: string | null;
  source: string;
  sourceKind: InstallRequest['kind'];
  commit: string | null;
  sha256: string | null;
  reusedRelease: boolean;
  venvReusedFrom: string | null;
  /** What pip added, changed and removed when venvReusedFrom had other requirements. */
  venvIncremental: IncrementalChanges | null;
  deployId: number | null;
  gate: GateResult | null;
  failure: string | null;
  /** Whose fault a failure was: only 'release' marks it bad. */
  faultOf: 'release' | 'environment' | null;
  rolledBackTo: string | null;
  pruned: string[];
  /** The app data: the snapshot taken before the switch, and what a failed gate wrote back. */
  data: DataOutcome | null;
  /** /etc/smolotchi/config.toml when this install seeded it from the release (first install). */
  configSeeded: string | null;
  plan: string[];
  durationMs: number;
  exitCode: number;
}

function baseResult(req: InstallRequest) {
  return {
    command: 'install' as const,
    version: req.version,
    source: req.source,
    sourceKind: req.kind,
    commit: null,
    sha256: null,
    reusedRelease: false,
    venvReusedFrom: null,
    venvIncremental: null,
    deployId: null,
    gate: null,
    failure: null,
    faultOf: null,
    rolledBackTo: null,
    pruned: [],
    data: null,
    configSeeded: null,
    plan: [],
  };
}

/**
 * A dry run tells the truth: it resolves the version from the source (read-only: no mirror sync,
 * no download) and applies every refusal of the real run, in the same order, with the same exit
 * codes. Only the lock is not taken: a busy lock (75) is a moment, not an answer.
 */
async function dryRun(ctx: Context, asked: ParsedRequest, options: InstallOptions, started: number): Promise<InstallResult> {
  requireRootOnDevice(ctx, 'install');
  const previous = await readCurrent(ctx.layout);
  const history = ctx.readHistory();
  const knownOnDisk = asked.version !== null ? await completeRelease(ctx.layout, asked.version) : null;
  // A named version already complete on disk is switched to without asking the source (as the real run does).
  const req = knownOnDisk ? { ...asked, version: asked.version! } : await probeRequest(ctx, asked);
  const existing = knownOnDisk ?? (await completeRelease(ctx.layout, req.version));
  const base = { ...baseResult(req), previous, durationMs: Date.now() - started };
  if (previous === req.version && !options.force && existing) return { ...base, status: 'already-current', exitCode: ExitCode.ok };
  refuseBadRelease(history, req.version, options.force);
  refuseDowngrade(previous, req.version, options.allowDowngrade);
  if (!existing) {
    refuseMovedTag(history, req.version, 'commit' in req ? req.commit : undefined, options.force);
    await preflight(ctx, req);
  }
  const plan = [
    existing ? `reuse complete release ${req.version} already on disk` : `fetch ${req.version} from ${req.source} (${req.kind}) into staging`,
    ...(existing ? [] : ['build its venv at its final path, byte-compile, smoke-import smolotchi.cli', 'write the completion stamp']),
    ...((await pathExists(configFile(ctx.layout))) ? [] : [`seed ${configFile(ctx.layout)} from the release's config.toml, web UI bound to 127.0.0.1`]),
    'render and write its systemd units, daemon-reload',
    `switch current: ${previous ?? '(none)'} -> ${req.version}`,
    'restart units, run the health gate; on failure roll back automatically',
    `prune beyond ${ctx.settings.keep} releases`,
  ];
  return { ...base, commit: 'commit' in req ? (req.commit ?? null) : null, status: 'dry-run', plan, exitCode: ExitCode.ok };
}

export async function install(options: InstallOptions, ctx: Context): Promise<InstallResult> {
  const started = Date.now();
  // Validate everything that needs no lock first: a refused command changes nothing.
  const parsed = parseRequest(ctx, options.target, options.source, options.sourceKind);
  if (parsed.version !== null) {
    refuseDowngrade(await readCurrent(ctx.layout), parsed.version, options.allowDowngrade);
    refuseBadRelease(ctx.readHistory(), parsed.version, options.force);
  }
  // An http(s) URL that does not say its kind is asked (read-only) whether it speaks git.
  const asked = await settleKind(parsed);
  if (options.dryRun) return dryRun(ctx, asked, options, started);
  return withMutation(ctx, `install ${asked.version ?? 'latest'}`, { waitSeconds: options.waitSeconds, force: options.force }, async ({ lock }) => {
    // `latest` asks the source under the lock: the git mirror is shared with other installs.
    const req = await resolveRequest(ctx, asked);
    return installLocked(ctx, req, options, lock, started);
  });
}

/** DESIGN steps 2-12 under the lock, for one resolved version. */
async function installLocked(ctx: Context, req: InstallRequest, options: InstallOptions, lock: ReleaseLock, started: number): Promise<InstallResult> {
  const base = baseResult(req);
  const history = ctx.history();
  const previous = await readCurrent(ctx.layout);
  // Read once, under the lock: nothing else changes the releases folder meanwhile.
  const existing = await completeRelease(ctx.layout, req.version);
  if (previous === req.version && !options.force && existing) {
    return { ...base, status: 'already-current' as const, previous, durationMs: Date.now() - started, exitCode: ExitCode.ok };
  }
  refuseBadRelease(history, req.version, options.force);
  refuseDowngrade(previous, req.version, options.allowDowngrade);

  const journal = DeployJournal.begin(ctx, 'install', previous, req.version, { source: req.source });
  let commit: string | null = null;
  let sha256: string | null = null;
  let venvReusedFrom: string | null = null;
  let venvIncremental: IncrementalChanges | null = null;
  let reusedRelease = false;
  let configSeeded: string | null = null;
  try {
    if (existing) {
      // Loaded only here: a new release is verified as it is fetched, not by the verify code.
      const { reverifyBeforeSwitch } = await import('../core/verify/reverify.js');
      await reverifyBeforeSwitch(ctx, req.version);
      reusedRelease = true;
      ({ commit, sha256 } = existing);
      ctx.log.info(`release ${req.version} is already complete on disk; switching to it`);
    } else {
      await preflight(ctx, req); // refuses before anything is staged when the disk lacks room
      ctx.log.info(`installing ${req.version} from ${req.source}`);
      const built = await buildRelease(ctx, req, journal, options.force);
      commit = built.fetched.commit ?? null;
      sha256 = built.fetched.sha256 ?? null;
      venvReusedFrom = built.venvReusedFrom;
      venvIncremental = built.venvIncremental;
    }
    // The app's own deploy flow: the operator's config is seeded once, then theirs.
    const seed = await seedConfig(ctx.layout, releaseDir(ctx.layout, req.version), req.version, ctx.log);
    if (seed.seeded) configSeeded = configFile(ctx.layout);
  } catch (err) {
    failDeploy(ctx, journal)(err); // records the failure, explained, and rethrows
  }

  // A forced re-install of the current release falls back to the last good other one, not to itself.
  const fallback = previous === req.version ? (await releaseFacts(ctx, history, previous)).rollbackTarget : previous;
  // Only a first activation that changed nothing throws (e.g. a full disk while staging units).
  const outcome = await switchVerified(ctx, { target: req.version, previous: fallback, journal, lock }).catch(failDeploy(ctx, journal));
  const common = { ...base, previous, commit, sha256, reusedRelease, venvReusedFrom, venvIncremental, configSeeded, deployId: journal.id, gate: outcome.gate, data: outcome.data };
  if (outcome.status !== 'switched') {
    const degraded = outcome.status === 'degraded';
    return {
      ...common,
      status: outcome.status,
      failure: degraded ? `${outcome.failure}; rollback failed: ${outcome.rollback?.failure}` : (outcome.failure ?? null),
      faultOf: outcome.faultOf ?? null,
      rolledBackTo: outcome.rollback?.to ?? null,
      durationMs: Date.now() - started,
      exitCode: degraded ? ExitCode.degraded : outcome.faultOf === 'environment' ? ExitCode.failed : ExitCode.rolledBack,
    };
  }
  journal.step('prune');
  const pruned = await pruneReleases(ctx, ctx.settings.keep, false).catch((err: Error) => {
    ctx.log.warn(`prune after install failed: ${err.message}`);
    return [] as string[];
  });
  journal.finish('succeeded');
  killPoint('install-finished', ctx.env);
  return { ...common, status: 'installed' as const, pruned, durationMs: Date.now() - started, exitCode: ExitCode.ok };
}
