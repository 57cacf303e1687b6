/**
 * DESIGN steps 3-7: fetch, promote, build the venv, write the stamp of a new release.
 * Never leaves a half-built release: any failure removes the new folder, and nothing else changed.
 */

import { refuseMovedTag } from './install-rules.js';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { prefetchServiceIdentity } from '../../adapters/service-user.js';
import { syncFileSystem } from '../../adapters/sync.js';
import { renderFor, unitOptions } from '../activate/activate.js';
import type { Context } from '../context.js';
import { fetchIntoStaging, type InstallRequest } from './fetch.js';
import { fsyncDir, removeViaTrash } from '../fsutil.js';
import type { HistoryStore } from '../state/history.js';
import type { DeployJournal } from '../state/journal.js';
import { killPoint } from '../killpoint.js';
import { isDeviceRoot, releaseDir } from '../layout.js';
import { TOOL_VERSION } from '../package-root.js';
import { lockDownRelease } from './permissions.js';
import { scanReleases, type ReleaseOnDisk } from '../state/releases.js';
import { writeStamp } from '../state/stamp.js';
import { resolveProfile } from './device-profile.js';
import { buildVenv, VENV_DIR, type BuiltVenv, type VenvSpec } from './venv.js';
import { saneVenvBytes, treeUsage } from './preflight.js';
import { bundledPackagingDir, renderUnits } from '../units/units.js';

/** Refuse a moved tag; remember the commit of a version seen for the first time. */
function checkTagCommit(history: HistoryStore, version: string, commit: string | undefined, force: boolean | undefined): void {
  if (!commit) return;
  refuseMovedTag(history, version, commit, force);
  if (!history.tagCommit(version)) history.recordTagCommit(version, commit);
}

/** The venv a release gets on this device: its requirement files, the device's profile, the chosen extras. */
export async function venvSpec(ctx: Context, target: string): Promise<VenvSpec> {
  const { profile, why } = await resolveProfile(ctx.settings.profile, ctx.layout.root);
  ctx.log.debug(`device profile ${profile} (${why})`);
  const { python, requirementFiles, extras, display } = ctx.settings;
  return { releaseDir: target, python, requirementFiles, extras, display, profile, runAs: ctx.serviceIdentity() };
}

/**
 * The new venv's size, for its stamp (the next preflight reads it instead of walking the venv): a
 * plain clone's is its source's, recorded in that stamp (the clone shares its files); anything else
 * is measured, once, now.
 */
async function venvUsage(target: string, venv: BuiltVenv, releases: ReleaseOnDisk[]): Promise<number> {
  const source = venv.reusedFrom && !venv.incremental ? releases.find((r) => path.resolve(r.dir) === venv.reusedFrom) : undefined;
  return saneVenvBytes(source?.stamp?.venvBytes) ?? (await treeUsage(path.join(target, VENV_DIR)));
}

/** DESIGN steps 3-7: fetch, promote, venv, stamp. Any failure removes the new folder; nothing else changed. */
export async function buildRelease(ctx: Context, req: InstallRequest, journal: DeployJournal, force: boolean | undefined) {
  const target = releaseDir(ctx.layout, req.version);
  // The venv step needs the service user: a lookup /etc/passwd cannot answer runs during the fetch.
  prefetchServiceIdentity({ deviceRoot: isDeviceRoot(ctx.layout), env: ctx.env });
  journal.step('fetch');
  const { staging, fetched } = await fetchIntoStaging(ctx, req);
  killPoint('fetched', ctx.env);
  try {
    // History writes can fail too (a full disk): the staging folder must not outlive them.
    journal.annotate({ commit: fetched.commit, sha256: fetched.sha256 });
    checkTagCommit(ctx.history(), req.version, fetched.commit, force);
    // Units that ask for more than the policy allows refuse the release before any of its code runs.
    await renderUnits(staging, bundledPackagingDir(), unitOptions(ctx));
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
    const complete = (await scanReleases(ctx.layout)).filter((r) => r.stamp && r.version !== req.version);
    const candidates = complete
      .map((r) => ({ releaseDir: r.dir, requirementHash: r.stamp!.requirementHash, pythonVersion: r.stamp!.pythonVersion, pythonIdentity: r.stamp!.pythonIdentity }));
    const venv = await buildVenv(await venvSpec(ctx, target), {
      log: ctx.log,
      reuseCandidates: candidates,
      progress: ctx.progress,
      // While the app is smoke-imported: root's and read-only to group/others (the service user),
      // whatever umask pip or python had (a plain clone of a locked-down venv was written by root
      // alone, see lockDownRelease); then the stamp vouches for every file of the tree and venv,
      // so they reach the disk first.
      alongsideSmoke: async (untouched) => {
        await lockDownRelease(target, { untouched });
        await syncFileSystem(target);
      },
    });
    journal.step('stamp');
    killPoint('tree-synced', ctx.env);
    const [venvBytes, units] = await Promise.all([venvUsage(target, venv, complete), renderFor(ctx, req.version)]);
    await writeStamp(target, {
      schemaVersion: 1,
      version: req.version,
      kind: fetched.kind,
      source: fetched.source,
      commit: fetched.commit ?? null,
      sha256: fetched.sha256 ?? null,
      requirementHash: venv.requirementHash,
      pythonVersion: venv.pythonVersion,
      pythonIdentity: venv.pythonIdentity,
      unitTemplateHash: units.templateHash,
      toolVersion: TOOL_VERSION,
      completedAt: new Date().toISOString(),
      venvReusedFrom: venv.reusedFrom,
      ...(venv.incremental ? { venvIncremental: venv.incremental } : {}),
      venvBytes,
      filesHash: fetched.filesHash ?? null,
      signedBy: fetched.signed?.keyId ?? null,
    });
    killPoint('stamp-written', ctx.env);
    return { fetched, venvReusedFrom: venv.reusedFrom, venvIncremental: venv.incremental };
  } catch (err) {
    await removeViaTrash(staging, ctx.layout.trashDir);
    await removeViaTrash(target, ctx.layout.trashDir);
    throw err;
  }
}
