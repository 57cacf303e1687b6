/**
 * Which units can be restarted together, in one systemctl call (one systemd transaction), without
 * losing DESIGN step 10's order: core before its dependents. systemd keeps that order inside a
 * transaction only where a unit says `After=` core; a unit that does not say so is restarted after
 * core's job has finished, in a call of its own, as before.
 */

import type { Context } from '../context.js';
import { restartStep } from '../progress.js';
import { parseUnit } from './unit-policy.js';
import { unitFiles, type RenderedUnits } from './unit-files.js';

/** The units that must be up before the rest (DESIGN step 10: core, or core-net when opted in). */
const FIRST = new Set(['smolotchi-core.service', 'smolotchi-core-net.service']);

/** Does `unit` say `After=` each of `units`, its drop-ins included? No when an empty `After=` may have reset the list. */
function orderedAfter(rendered: RenderedUnits, unit: string, units: string[]): boolean {
  const after = new Set<string>();
  for (const file of unitFiles(rendered, unit)) {
    for (const d of parseUnit(file.content)) {
      if (d.section !== 'Unit' || d.key !== 'After') continue;
      // An empty assignment may clear what another file said: not worth guessing, keep the old way.
      if (d.value === '') return false;
      for (const name of d.value.split(/\s+/)) after.add(name);
    }
  }
  return units.every((u) => after.has(u));
}

/**
 * The start order cut into groups, each restarted by one call, the groups one after another.
 * Core (or core-net) opens the first group; a service joins it only when it is ordered after
 * every core unit already in it (systemd then starts it once core is up, READY=1 for
 * Type=notify); timers join freely: they only schedule, nothing waits on them.
 */
export function restartGroups(rendered: RenderedUnits): string[][] {
  const groups: string[][] = [];
  let current: string[] = [];
  for (const unit of rendered.startOrder) {
    const firsts = current.filter((u) => FIRST.has(u));
    const joins = !unit.endsWith('.service') || firsts.length === 0 || orderedAfter(rendered, unit, firsts);
    if (!joins) {
      groups.push(current);
      current = [];
    }
    current.push(unit);
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * Restart a unit set the way a deploy does: one call per group, each a progress step. The units
 * restarted, in order; the first failing call throws. (The deploy's own loop also names the unit
 * whose job failed: see activate.ts.)
 */
export async function restartByGroups(ctx: Pick<Context, 'services' | 'progress'>, rendered: RenderedUnits): Promise<string[]> {
  const restarted: string[] = [];
  for (const group of restartGroups(rendered)) {
    ctx.progress.step(restartStep(group));
    await ctx.services.restart(group);
    restarted.push(...group);
  }
  return restarted;
}
