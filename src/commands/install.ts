import { rename } from 'node:fs/promises';
import type { Context } from '../core/context.js';
import { IntegrityError, ReleaseError, UsageError } from '../core/errors.js';
import { compareVersions } from '../core/version.js';
import { ExitCode } from '../core/exit-codes.js';
import { fetchIntoStaging, resolveRequest, type InstallRequest } from '../core/fetch.js';
import { fsyncDir, removeViaTrash } from '../core/fsutil.js';
import type { GateResult } from '../core/health.js';
import type { HistoryStore } from '../core/history.js';
import { failDeploy } from '../core/disk-full.js';
import { DeployJournal } from '../core/journal.js';
import { killPoint } from '../core/killpoint.js';
import { preflight } from '../core/preflight.js';
import { syncFileSystem } from '../adapters/sync.js';
import { releaseDir } from '../core/layout.js';
import { withMutation } from '../core/mutation.js';
import { lockDownRelease } from '../core/permissions.js';
import { TOOL_VERSION } from '../core/package-root.js';
import { completeRelease, scanReleases } from '../core/releases.js';
import { writeStamp } from '../core/stamp.js';
import { readCurrent } from '../core/switch.js';
import { buildVenv } from '../core/venv.js';
import { renderFor } from '../core/activate.js';
import { switchVerified } from '../core/verified-switch.js';
import { releaseFacts } from '../core/targets.js';
import { pruneReleases } from './prune.js';
import { mkdir } from 'node:fs/promises';

export interface InstallOptions {
  target: string;
  source?: string;
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
  deployId: number | null;
  gate: GateResult | null;
  failure: string | null;
  rolledBackTo: string | null;
  pruned: string[];
  plan: string[];
  durationMs: number;
  exitCode: number;
}

/** DESIGN steps 3-7: fetch, promote, venv, stamp. Any failure removes the new folder; nothing else changed. */
async function buildRelease(ctx: Context, req: InstallRequest, journal: DeployJournal, force: boolean | undefined) {
  const target = releaseDir(ctx.layout, req.version);
  journal.step('fetch');
  const { staging, fetched } = await fetchIntoStaging(ctx, req);
  killPoint('fetched', ctx.env);
  try {
    // History writes can fail too (a full disk): the staging folder must not outlive them.
    journal.annotate({ commit: fetched.commit, sha256: fetched.sha256 });
    checkTagCommit(ctx.history(), req.version, fetched.commit, force);
  } catch (err) {
    await removeViaTrash(staging, ctx.layout.trashDir);
    throw err;
  }
  try {
    journal.step('promote');
    // A folder left by a crash (no stamp) is replaced; recovery normally removed it already.
    await removeViaTrash(target, ctx.layout.trashDir);
    await mkdir(ctx.layout.releasesDir, { recursive: true });
    await rename(staging, target);
    killPoint('promote-renamed', ctx.env);
    fsyncDir(ctx.layout.releasesDir);
    journal.step('venv');
    const candidates = (await scanReleases(ctx.layout))
      .filter((r) => r.stamp && r.version !== req.version)
      .map((r) => ({ releaseDir: r.dir, requirementHash: r.stamp!.requirementHash }));
    const venv = await buildVenv(
      { releaseDir: target, python: ctx.settings.python, requirementFiles: ctx.settings.requirementFiles, extras: ctx.settings.extras },
      { log: ctx.log, reuseCandidates: candidates },
    );
    // Root's and read-only to group/others (the service user), whatever umask pip or python had.
    await lockDownRelease(target);
    journal.step('stamp');
    const units = await renderFor(ctx, req.version);
    // The stamp vouches for every file of the tree and venv: they reach the disk first.
    await syncFileSystem(target);
    killPoint('tree-synced', ctx.env);
    await writeStamp(target, {
      schemaVersion: 1,
      version: req.version,
      kind: fetched.kind,
      source: fetched.source,
      commit: fetched.commit ?? null,
      sha256: fetched.sha256 ?? null,
      requirementHash: venv.requirementHash,
      pythonVersion: venv.pythonVersion,
      unitTemplateHash: units.templateHash,
      toolVersion: TOOL_VERSION,
      completedAt: new Date().toISOString(),
      venvReusedFrom: venv.reusedFrom,
      filesHash: fetched.filesHash ?? null,
      signedBy: fetched.signed?.keyId ?? null,
    });
    killPoint('stamp-written', ctx.env);
    return { fetched, venvReusedFrom: venv.reusedFrom };
  } catch (err) {
    await removeViaTrash(staging, ctx.layout.trashDir);
    await removeViaTrash(target, ctx.layout.trashDir);
    throw err;
  }
}

/** `rollback` is the way back; going below the running version through install is deliberate only. */
function refuseDowngrade(current: string | null, version: string, allow: boolean | undefined): void {
  if (current && !allow && compareVersions(version, current) < 0) {
    throw new UsageError(`${version} is older than the current ${current}`, 'use `smolotchi release rollback --to` for a release on disk, or pass --allow-downgrade');
  }
}

/**
 * A version names one commit forever: a tag that now points elsewhere than at its first install
 * means the source was rewritten (or tampered with), so it is refused unless --force.
 */
function checkTagCommit(history: HistoryStore, version: string, commit: string | undefined, force: boolean | undefined): void {
  if (!commit) return;
  const known = history.tagCommit(version);
  if (known && known !== commit && !force) {
    throw new IntegrityError(`tag of ${version} now points at ${commit.slice(0, 12)}, but it was ${known.slice(0, 12)} when first installed`, 'pass --force if the tag was moved on purpose');
  }
  if (!known) history.recordTagCommit(version, commit);
}

/** A release that failed its gate is not installed again without --force. */
function refuseBadRelease(history: HistoryStore | null, version: string, force: boolean | undefined): void {
  const mark = history?.marks().get(version);
  if (mark?.state === 'bad' && !force) {
    throw new ReleaseError(`release ${version} is marked bad: ${mark.reason ?? 'failed its health gate'}`, ExitCode.failed, 'pass --force to try it again');
  }
}

export async function install(options: InstallOptions, ctx: Context): Promise<InstallResult> {
  const started = Date.now();
  // Validate everything that needs no lock first: a refused command changes nothing.
  const req = await resolveRequest(ctx, options.target, options.source);
  const base = {
    command: 'install' as const,
    version: req.version,
    source: req.source,
    sourceKind: req.kind,
    commit: null,
    sha256: null,
    reusedRelease: false,
    venvReusedFrom: null,
    deployId: null,
    gate: null,
    failure: null,
    rolledBackTo: null,
    pruned: [],
    plan: [],
  };
  refuseDowngrade(await readCurrent(ctx.layout), req.version, options.allowDowngrade);
  if (options.dryRun) {
    const previous = await readCurrent(ctx.layout);
    const onDisk = await completeRelease(ctx.layout, req.version);
    const plan = [
      onDisk ? `reuse complete release ${req.version} already on disk` : `fetch ${req.version} from ${req.source} (${req.kind}) into staging`,
      ...(onDisk ? [] : ['build its venv at its final path, byte-compile, smoke-import smolotchi.cli', 'write the completion stamp']),
      'render and write its systemd units, daemon-reload',
      `switch current: ${previous ?? '(none)'} -> ${req.version}`,
      'restart units, run the health gate; on failure roll back automatically',
      `prune beyond ${ctx.settings.keep} releases`,
    ];
    return { ...base, status: 'dry-run', previous, plan, durationMs: Date.now() - started, exitCode: ExitCode.ok };
  }

  // Checked before the lock too, so a refused install touches nothing at all.
  refuseBadRelease(ctx.readHistory(), req.version, options.force);
  return withMutation(ctx, `install ${req.version}`, options.waitSeconds, async ({ lock }) => {
    const history = ctx.history();
    const previous = await readCurrent(ctx.layout);
    if (previous === req.version && !options.force && (await completeRelease(ctx.layout, req.version))) {
      return { ...base, status: 'already-current' as const, previous, durationMs: Date.now() - started, exitCode: ExitCode.ok };
    }
    refuseBadRelease(history, req.version, options.force);
    refuseDowngrade(previous, req.version, options.allowDowngrade);

    const journal = DeployJournal.begin(ctx, 'install', previous, req.version, { source: req.source });
    let commit: string | null = null;
    let sha256: string | null = null;
    let venvReusedFrom: string | null = null;
    let reusedRelease = false;
    try {
      const existing = await completeRelease(ctx.layout, req.version);
      if (existing) {
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
      }
    } catch (err) {
      failDeploy(ctx, journal)(err); // records the failure, explained, and rethrows
    }

    // A forced re-install of the current release falls back to the last good other one, not to itself.
    const fallback = previous === req.version ? (await releaseFacts(ctx, history, previous)).rollbackTarget : previous;
    // Only a first activation that changed nothing throws (e.g. a full disk while staging units).
    const outcome = await switchVerified(ctx, { target: req.version, previous: fallback, journal, lock }).catch(failDeploy(ctx, journal));
    const common = { ...base, previous, commit, sha256, reusedRelease, venvReusedFrom, deployId: journal.id, gate: outcome.gate };
    if (outcome.status !== 'switched') {
      const degraded = outcome.status === 'degraded';
      return {
        ...common,
        status: outcome.status,
        failure: degraded ? `${outcome.failure}; rollback failed: ${outcome.rollback?.failure}` : (outcome.failure ?? null),
        rolledBackTo: outcome.rollback?.to ?? null,
        durationMs: Date.now() - started,
        exitCode: degraded ? ExitCode.degraded : ExitCode.rolledBack,
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
  });
}
