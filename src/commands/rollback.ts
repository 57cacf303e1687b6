import type { Context } from '../core/context.js';
import { NotFoundError, ReleaseError } from '../core/errors.js';
import { ExitCode } from '../core/exit-codes.js';
import type { GateResult } from '../core/health.js';
import { failDeploy } from '../core/disk-full.js';
import { DeployJournal } from '../core/journal.js';
import { killPoint } from '../core/killpoint.js';
import { withMutation } from '../core/mutation.js';
import { completeRelease } from '../core/releases.js';
import { readCurrent } from '../core/switch.js';
import { releaseFacts } from '../core/targets.js';
import { reverifyBeforeSwitch } from '../core/reverify.js';
import { parseVersion } from '../core/version.js';
import { switchVerified } from '../core/verified-switch.js';

export interface RollbackOptions {
  to?: string;
  dryRun?: boolean;
  waitSeconds?: number;
}

export interface RollbackResult {
  command: 'rollback';
  status: 'rolled-back' | 'reverted' | 'degraded' | 'dry-run';
  from: string | null;
  to: string;
  deployId: number | null;
  gate: GateResult | null;
  failure: string | null;
  plan: string[];
  exitCode: number;
}

/** Where to go: --to (must be complete on disk: rollback never fetches) or the last good release. */
async function chooseTarget(ctx: Context, to: string | undefined, current: string | null): Promise<string> {
  if (to !== undefined) {
    const version = parseVersion(to);
    if (!(await completeRelease(ctx.layout, version))) {
      throw new NotFoundError(`release ${version} is not installed on this device`, 'see `smolotchi release list`');
    }
    if (version === current) throw new ReleaseError(`release ${version} is already current`, ExitCode.failed);
    await reverifyBeforeSwitch(ctx, version);
    return version;
  }
  const facts = await releaseFacts(ctx, ctx.readHistory(), current);
  if (!facts.rollbackTarget) throw new NotFoundError('no earlier complete release to roll back to');
  return facts.rollbackTarget;
}

/** `rollback` is DESIGN steps 1 and 8-12 against an already complete release: no fetch, no build. */
export async function rollback(options: RollbackOptions, ctx: Context): Promise<RollbackResult> {
  if (options.to !== undefined) parseVersion(options.to);
  if (options.dryRun) {
    const current = await readCurrent(ctx.layout);
    const to = await chooseTarget(ctx, options.to, current);
    const plan = [`render and write ${to}'s units`, `switch current: ${current ?? '(none)'} -> ${to}`, 'restart units and run the health gate'];
    return { command: 'rollback', status: 'dry-run', from: current, to, deployId: null, gate: null, failure: null, plan, exitCode: ExitCode.ok };
  }
  return withMutation(ctx, `rollback${options.to ? ` to ${options.to}` : ''}`, options.waitSeconds, async ({ lock }) => {
    const current = await readCurrent(ctx.layout);
    const to = await chooseTarget(ctx, options.to, current);
    const journal = DeployJournal.begin(ctx, 'rollback', current, to);
    ctx.log.info(`rolling back ${current ?? '(none)'} -> ${to}`);
    // Only an activation that changed nothing throws (e.g. a full disk while staging units).
    const outcome = await switchVerified(ctx, { target: to, previous: current, journal, lock }).catch(failDeploy(ctx, journal));
    const base = { command: 'rollback' as const, from: current, to, deployId: journal.id, gate: outcome.gate, plan: [] };
    if (outcome.status === 'switched') {
      journal.finish('succeeded');
      killPoint('rollback-finished', ctx.env);
      return { ...base, status: 'rolled-back' as const, failure: null, exitCode: ExitCode.ok };
    }
    const degraded = outcome.status === 'degraded';
    return {
      ...base,
      status: degraded ? ('degraded' as const) : ('reverted' as const),
      failure: degraded ? `${outcome.failure}; going back failed: ${outcome.rollback?.failure}` : (outcome.failure ?? null),
      exitCode: degraded ? ExitCode.degraded : ExitCode.rolledBack,
    };
  });
}
