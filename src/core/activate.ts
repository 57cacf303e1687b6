import { mkdir } from 'node:fs/promises';
import { diffUnits, readInstalledUnits, renderUnits, writeUnits, bundledPackagingDir, type RenderedUnits } from './units.js';
import type { Context } from './context.js';
import type { GateFailure } from './health.js';
import type { DeployJournal } from './journal.js';
import { releaseDir } from './layout.js';
import type { ReleaseLock } from './lock.js';
import { killPoint } from './killpoint.js';
import { restartStep } from './progress.js';
import { flipCurrent, removeCurrent } from './switch.js';

export interface Activation {
  rendered: RenderedUnits;
  removedUnits: string[];
  restartFailure?: GateFailure;
}

export function unitOptions(ctx: Context) {
  return { display: ctx.settings.display, coreNet: ctx.settings.coreNet, toolCommand: ctx.toolCommand };
}

/** What the units of a release would look like on this device with these settings. */
export function renderFor(ctx: Context, version: string | null): Promise<RenderedUnits> {
  return renderUnits(version === null ? null : releaseDir(ctx.layout, version), bundledPackagingDir(), unitOptions(ctx));
}

/**
 * DESIGN step 8: install THIS release's units. Their new content is staged first (a full disk
 * fails there, with nothing changed); then units the new set lacks are stopped and disabled (while
 * systemd still has their files), the files renamed into place, tmpfiles created, systemd
 * reloaded and the new set enabled.
 */
export async function applyUnits(ctx: Context, rendered: RenderedUnits, journal: DeployJournal | null): Promise<string[]> {
  const { layout, services } = ctx;
  const diff = diffUnits(rendered, await readInstalledUnits(layout.unitDir));
  journal?.step('write-units');
  await writeUnits(layout.unitDir, layout.tmpfilesFile, rendered, {
    beforeCommit: async () => {
      if (diff.removedUnits.length === 0) return;
      journal?.step('stop-removed-units');
      await services.stop(diff.removedUnits);
      await services.disable(diff.removedUnits);
    },
  });
  killPoint('units-written', ctx.env);
  await mkdir(layout.locksDir, { recursive: true });
  journal?.step('daemon-reload');
  await services.tmpfilesCreate(layout.tmpfilesFile);
  await services.daemonReload();
  killPoint('daemon-reloaded', ctx.env);
  if (rendered.units.length > 0) await services.enable(rendered.units);
  killPoint('units-enabled', ctx.env);
  return diff.removedUnits;
}

/** Restart in dependency order; the first failure stops the sequence and is reported to the gate. */
async function restartAll(ctx: Context, order: string[]): Promise<GateFailure | undefined> {
  for (const unit of order) {
    ctx.progress.step(restartStep(unit));
    try {
      await ctx.services.restart(unit);
      killPoint(`restarted:${unit}`, ctx.env);
    } catch (err) {
      return { check: 'restart', unit, reason: (err as Error).message, journal: await ctx.services.journal(unit, 10).catch(() => []) };
    }
  }
  return undefined;
}

/** DESIGN steps 8-10 for a complete release: its units, the flip, the restarts. */
export async function activate(ctx: Context, version: string, journal: DeployJournal, lock: ReleaseLock): Promise<Activation> {
  journal.step('render-units');
  const rendered = await renderFor(ctx, version);
  const removedUnits = await applyUnits(ctx, rendered, journal);
  journal.step('flip');
  await flipCurrent(ctx.layout, version);
  journal.step('restart');
  const restartFailure = await restartAll(ctx, rendered.startOrder);
  // Stopping units can make systemd remove runtime directories; keep our lock in place.
  lock.reassert();
  killPoint('lock-reasserted', ctx.env);
  if (ctx.services.kind === 'none') ctx.log.info(`service steps skipped: ${ctx.services.reason ?? 'no service manager'}`);
  return { rendered, removedUnits, restartFailure };
}

/** The unit set of "nothing installed": applying it stops, disables and removes every unit we own. */
export const NO_UNITS: RenderedUnits = { source: 'bundled', files: [], units: [], startOrder: [], tmpfiles: '', templateHash: '' };

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
