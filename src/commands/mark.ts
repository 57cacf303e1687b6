/**
 * `release mark good|bad`: records the operator's verdict on a version in the history.
 * Never marks good a release that is not complete on this device.
 */

import type { Context } from '../core/context.js';
import { NotFoundError, UsageError } from '../core/errors.js';
import { ExitCode } from '../core/exit-codes.js';
import { DEGRADED_KEY } from '../core/state/history.js';
import { invokingUser } from '../core/state/journal.js';
import { withMutation } from '../core/mutation/mutation.js';
import { completeRelease } from '../core/state/releases.js';
import { readCurrent } from '../core/state/switch.js';
import { parseVersion } from '../core/version.js';

export interface MarkOptions {
  state: string;
  version: string;
  reason?: string;
  waitSeconds?: number;
}

export interface MarkResult {
  command: 'mark';
  version: string;
  state: 'good' | 'bad';
  /** The mark before this command (null: none). */
  was: 'good' | 'bad' | null;
  reason: string | null;
  user: string;
  current: boolean;
  /** A good mark on the current release ends a degraded state: the operator vouches for it. */
  degradedCleared: boolean;
  exitCode: number;
}

const MAX_REASON = 500;

function parseState(state: string): 'good' | 'bad' {
  if (state === 'good' || state === 'bad') return state;
  throw new UsageError(`mark must be good or bad, not ${JSON.stringify(state)}`, 'smolotchi release mark good|bad <version> [--reason TEXT]');
}

function parseReason(reason: string | undefined): string | null {
  if (reason === undefined) return null;
  // Shown in tables and status lines: one line, printable, bounded.
  if (/[\u0000-\u001f\u007f]/.test(reason)) throw new UsageError('--reason may not contain control characters or line breaks');
  if (reason.length > MAX_REASON) throw new UsageError(`--reason is longer than ${MAX_REASON} characters`);
  return reason.trim() || null;
}

/**
 * `mark good|bad <ver>`, as `rauc status mark-good|mark-bad`: the operator's verdict, recorded in
 * the history like the gate's. Bad: never installed again without --force, never a rollback
 * target (any version, on disk or not). Good: only a complete release on this device.
 */
export async function mark(options: MarkOptions, ctx: Context): Promise<MarkResult> {
  const state = parseState(options.state);
  const version = parseVersion(options.version);
  const reason = parseReason(options.reason);
  return withMutation(ctx, `mark ${state} ${version}`, options.waitSeconds, async () => {
    if (state === 'good' && !(await completeRelease(ctx.layout, version))) {
      throw new NotFoundError(`release ${version} is not installed on this device: only a release on disk can be marked good`, 'see `smolotchi release list`');
    }
    const history = ctx.history();
    const was = history.marks().get(version)?.state ?? null;
    const user = invokingUser(ctx.env);
    history.setMark(version, state, reason, null, { source: 'operator', user });
    const current = (await readCurrent(ctx.layout)) === version;
    const degradedCleared = state === 'good' && current && history.getState(DEGRADED_KEY) !== null;
    if (degradedCleared) history.setState(DEGRADED_KEY, null);
    return { command: 'mark', version, state, was, reason, user, current, degradedCleared, exitCode: ExitCode.ok };
  });
}
