/**
 * Which units are restarted together, in one systemctl call (one systemd transaction), keeping
 * DESIGN step 10's order: core first, in a call of its own, then everything else in one call.
 * One call for all would be one spawn fewer, but systemd then stops web with core and starts it
 * only once core is up again: the web UI's gap grows by core's whole restart (measured: 250 ms
 * against 110 ms for a web restart alone, bench/downtime.ts). Core's call returns once core is up
 * (READY=1 for Type=notify), so the second needs no After= to wait for it.
 */

import type { Context } from '../context.js';
import { restartStep } from '../progress.js';
import type { RenderedUnits } from './unit-files.js';

/** The units that must be up before the rest (DESIGN step 10: core, or core-net when opted in). */
const FIRST = new Set(['smolotchi-core.service', 'smolotchi-core-net.service']);

/** The start order cut into at most two calls: core (or core-net), then the rest. */
export function restartGroups(rendered: RenderedUnits): string[][] {
  const first = rendered.startOrder.filter((u) => FIRST.has(u));
  const rest = rendered.startOrder.filter((u) => !FIRST.has(u));
  return [first, rest].filter((group) => group.length > 0);
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
