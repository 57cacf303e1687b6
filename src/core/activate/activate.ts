/**
 * DESIGN steps 8-10: install a release's units, flip `current`, restart in order; undo a first one.
 * Never writes a unit before all are staged and the folders proven writable; never runs the gate.
 */

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { diffUnits, installChanged, readInstalledUnits, renderUnits, shipsOwnUnits, writeUnits, bundledPackagingDir, type RenderedUnits } from '../units/units.js';
import type { Context } from '../context.js';
import type { BeforeSwitch } from '../data/data-switch.js';
import type { GateFailure } from './health.js';
import type { DeployJournal } from '../state/journal.js';
import { releaseDir } from '../layout.js';
import { readLock, type ReleaseLock } from '../state/lock.js';
import { environmentFault, LockLostError } from './environment-fault.js';
import { randomSuffix } from '../fsutil.js';
import { killPoint } from '../killpoint.js';
import { restartStep } from '../progress.js';
import { restartGroups } from '../units/restart-groups.js';
import { alreadyEnabled } from '../units/enablement.js';
import { SystemdError } from '../../adapters/systemctl.js';
import { flipCurrent, removeCurrent } from '../state/switch.js';

export interface Activation {
  rendered: RenderedUnits;
  removedUnits: string[];
  restartFailure?: GateFailure;
}

export function unitOptions(ctx: Context) {
  return { display: ctx.settings.display, coreNet: ctx.settings.coreNet, toolCommand: ctx.toolCommand };
}

/** The bundled unit set as rendered once per command (per context): the tool's own files, with the command's settings. */
const bundledRenders = new WeakMap<Context, RenderedUnits>();

/**
 * What the units of a release would look like on this device with these settings. A release
 * without its own units renders the bundled set, the same for every such release: rendered once
 * per command (a rollback's recovery and its target would otherwise render it twice). A release's
 * own units are read and judged again on every call.
 */
export async function renderFor(ctx: Context, version: string | null): Promise<RenderedUnits> {
  const dir = version === null ? null : releaseDir(ctx.layout, version);
  if (dir !== null && shipsOwnUnits(dir)) return renderUnits(dir, bundledPackagingDir(), unitOptions(ctx));
  const known = bundledRenders.get(ctx);
  if (known) return known;
  const rendered = await renderUnits(dir, bundledPackagingDir(), unitOptions(ctx));
  // Only a bundled render is kept (a release that gained packaging/systemd/ meanwhile is rendered afresh above).
  if (rendered.source === 'bundled') bundledRenders.set(ctx, rendered);
  return rendered;
}

const unchangedFile = (file: string, content: string): boolean => {
  try {
    return readFileSync(file, 'utf8') === content;
  } catch {
    return false;
  }
};

/**
 * DESIGN step 8: install THIS release's units. Their new content is staged first (a full disk
 * fails there, with nothing changed); then units the new set lacks are stopped and disabled (while
 * systemd still has their files), the files renamed into place, tmpfiles created, systemd
 * reloaded and the new set enabled.
 */
export async function applyUnits(ctx: Context, rendered: RenderedUnits, journal: DeployJournal | null): Promise<string[]> {
  const { layout, services } = ctx;
  const installed = await readInstalledUnits(layout.unitDir);
  const diff = diffUnits(rendered, installed);
  // Links made from an [Install] section (WantedBy=, an old release's Alias=) are removed while
  // systemd still reads the old file; enable below makes the new ones.
  const relink = installChanged(rendered, installed);
  if (!diff.drift && unchangedFile(layout.tmpfilesFile, rendered.tmpfiles)) {
    // Byte-identical to what systemd already loaded (typical for a rollback): nothing to write or
    // reload. tmpfiles stays: /run/smolotchi may be gone (the service user's, so tmpfiles makes
    // it). enable runs only when a link of it is missing: a unit someone disabled by hand.
    journal?.step('units-unchanged');
    await services.tmpfilesCreate(layout.tmpfilesFile);
    if (!alreadyEnabled(layout.unitDir, rendered)) await services.enable(rendered.units);
    killPoint('units-enabled', ctx.env);
    return [];
  }
  journal?.step('write-units');
  await writeUnits(layout.unitDir, layout.tmpfilesFile, rendered, {
    beforeCommit: async () => {
      if (relink.length > 0) await services.disable(relink);
      if (diff.removedUnits.length === 0) return;
      journal?.step('stop-removed-units');
      await services.stop(diff.removedUnits);
      await services.disable(diff.removedUnits);
    },
  });
  killPoint('units-written', ctx.env);
  journal?.step('daemon-reload');
  await services.tmpfilesCreate(layout.tmpfilesFile);
  await services.daemonReload();
  killPoint('daemon-reloaded', ctx.env);
  if (rendered.units.length > 0) await services.enable(rendered.units);
  killPoint('units-enabled', ctx.env);
  return diff.removedUnits;
}

/**
 * Restart in dependency order, group by group (restart-groups.ts): a group is one systemctl call,
 * so systemd orders it by After= and starts what is independent at once. The first failing group
 * stops the sequence; the failure names the first unit of the order whose job failed.
 */
async function restartAll(ctx: Context, rendered: RenderedUnits): Promise<GateFailure | undefined> {
  for (const group of restartGroups(rendered)) {
    ctx.progress.step(restartStep(group));
    try {
      await ctx.services.restart(group);
      for (const unit of group) killPoint(`restarted:${unit}`, ctx.env);
    } catch (err) {
      // systemd out of reach is not the unit's failure: the caller applies the fault rule.
      if (environmentFault(err)) throw err;
      const named = err instanceof SystemdError ? err.failedUnits : [];
      const unit = group.find((u) => named.includes(u)) ?? group[0]!;
      return { check: 'restart', unit, reason: (err as Error).message, journal: await ctx.services.journal(unit, 10).catch(() => []) };
    }
  }
  return undefined;
}

/**
 * Check first what can be checked: a read-only or unwritable /opt or unit folder fails here, with
 * nothing changed, instead of halfway through (units rewritten, then the flip refused). Synchronous:
 * six tiny calls, each cheaper than a thread-pool round trip, on every activation.
 */
function probeWritable(layout: Context['layout']): void {
  // Named like the temp files recovery already sweeps, so a power cut here leaves no stray file.
  const probes = [path.join(layout.optDir, `.current.probe-${randomSuffix()}`), path.join(layout.unitDir, `.smolotchi-probe.service.${randomSuffix()}.tmp`)];
  for (const probe of probes) {
    try {
      mkdirSync(path.dirname(probe), { recursive: true });
      writeFileSync(probe, '', { flag: 'wx', mode: 0o600 });
      rmSync(probe, { force: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw Object.assign(new Error(`cannot write to ${path.dirname(probe)} (${code ?? (err as Error).message}); nothing was changed`), { code });
    }
  }
}

/** How far an activation got: what an environment fault must undo, and whether anything restarted. */
export interface ActivationProgress {
  unitsTouched: boolean;
  flipped: boolean;
  restarted: boolean;
}

/**
 * DESIGN steps 8-10 for a complete release: its units, the flip, the restarts. `beforeSwitch`
 * (the app-data step) runs once the units are rendered and the folders proven writable, before
 * anything is written.
 */
export async function activate(
  ctx: Context,
  version: string,
  journal: DeployJournal,
  lock: ReleaseLock,
  beforeSwitch?: BeforeSwitch,
  progress: ActivationProgress = { unitsTouched: false, flipped: false, restarted: false },
): Promise<Activation> {
  // Deferred: rendering and the probes change nothing; the data step and the units journal their own steps first.
  journal.step('render-units', { deferSync: true });
  const rendered = await renderFor(ctx, version);
  probeWritable(ctx.layout);
  await beforeSwitch?.();
  progress.unitsTouched = true;
  const removedUnits = await applyUnits(ctx, rendered, journal);
  journal.step('flip');
  await flipCurrent(ctx.layout, version);
  progress.flipped = true;
  journal.step('restart');
  progress.restarted = true;
  const restartFailure = await restartAll(ctx, rendered);
  // Stopping units can make systemd remove runtime directories; keep our lock in place.
  lock.reassert();
  if (JSON.stringify(readLock(lock.file)) !== JSON.stringify(lock.info)) throw new LockLostError(lock.file);
  killPoint('lock-reasserted', ctx.env);
  if (ctx.services.kind === 'none') ctx.log.info(`service steps skipped: ${ctx.services.reason ?? 'no service manager'}`);
  return { rendered, removedUnits, restartFailure };
}

/** The unit set of "nothing installed": applying it stops, disables and removes every unit we own. */
export const NO_UNITS: RenderedUnits = { source: 'bundled', files: [], units: [], startOrder: [], loosened: {}, tmpfiles: '', templateHash: '' };

/**
 * Undo a first install (its gate failed, or a crash left it unproven): nothing was installed
 * before, so nothing stays. Units first: a crash in between leaves `current`, and the next
 * recovery repeats this.
 */
export async function deactivateAll(ctx: Context, journal: DeployJournal | null): Promise<void> {
  journal?.step('deactivate');
  // Its sub-steps stay unjournaled: recovery must see 'deactivate' to finish the job after a crash.
  await applyUnits(ctx, NO_UNITS, null);
  killPoint('deactivated-units', ctx.env);
  await removeCurrent(ctx.layout);
}
