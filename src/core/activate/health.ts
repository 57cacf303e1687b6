/**
 * DESIGN step 11, the health gate: units active and settled, web UI answering, the release's check.
 * Never runs the release's check as root, and decides nothing about what happens after it.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { formatHostPort, probeHttp } from '../../adapters/http-probe.js';
import { tailLines } from '../../adapters/process.js';
import { runAsService } from '../../adapters/service-user.js';
import type { UnitState } from '../../adapters/systemctl.js';
import type { Context } from '../context.js';
import { killPoint } from '../killpoint.js';

export interface GateFailure {
  check: 'restart' | 'unit' | 'http' | 'health-check' | 'environment';
  unit?: string;
  reason: string;
  journal: string[];
}

export interface GateResult {
  ok: boolean;
  failure?: GateFailure;
  durationMs: number;
  checks: string[];
}

const POLL_MS = 250;

export function describeFailure(f: GateFailure): string {
  const where = f.unit ? `${f.unit}: ` : '';
  const log = f.journal.length ? ` (last log: ${f.journal[f.journal.length - 1]})` : '';
  return `${where}${f.reason}${log}`;
}

function unitIsUp(s: UnitState): boolean {
  return s.activeState === 'active' && s.loadState !== 'not-found';
}

function unitHasFailed(s: UnitState): boolean {
  return s.activeState === 'failed' || s.loadState === 'not-found';
}

async function unitFailure(ctx: Context, unit: string, reason: string): Promise<GateFailure> {
  return { check: 'unit', unit, reason, journal: await ctx.services.journal(unit, 10).catch(() => []) };
}

interface Settled {
  /** Each unit's restart count when it was seen active. */
  restarts: Map<string, number>;
  /** Every unit was seen active in one and the same answer of systemd. */
  seenTogether: boolean;
}

/**
 * Every unit reaches active within the start timeout, judged in order (a unit is looked at once
 * those before it are up); each round asks systemd about every unit still waited for at once.
 */
async function waitActive(ctx: Context, units: string[]): Promise<GateFailure | Settled> {
  let rounds = 0;
  const deadline = Date.now() + ctx.settings.startTimeoutSeconds * 1000;
  const restarts = new Map<string, number>();
  const first = new Map<string, number>();
  let pending = units;
  while (pending.length > 0) {
    const states = await ctx.services.showAll(pending);
    rounds++;
    let i = 0;
    for (; i < pending.length; i++) {
      const unit = pending[i]!;
      const s = states[i]!;
      if (unitIsUp(s)) {
        restarts.set(unit, s.nRestarts);
        continue;
      }
      if (unitHasFailed(s)) return unitFailure(ctx, unit, `${s.activeState} (${s.result || s.subState})`);
      // A unit cycling through auto-restart is crash-looping: fail now, not when its start limit hits.
      if (!first.has(unit)) first.set(unit, s.nRestarts);
      if (s.subState === 'auto-restart' || s.nRestarts > first.get(unit)!) {
        return unitFailure(ctx, unit, `crash-looping before it became active (${s.result || s.subState}, ${s.nRestarts} restart(s))`);
      }
      if (Date.now() > deadline) {
        return unitFailure(ctx, unit, `not active after ${ctx.settings.startTimeoutSeconds}s (${s.activeState}/${s.subState})`);
      }
      break; // still starting: the units after it are judged once it is up
    }
    pending = pending.slice(i);
    if (pending.length > 0) await sleep(POLL_MS);
  }
  return { restarts, seenTogether: rounds === 1 };
}

/** Units stay active with an unchanged restart count for the whole settle window. */
async function settle(ctx: Context, { restarts: baseline, seenTogether }: Settled): Promise<GateFailure | null> {
  // A window of 0 s is one instant with every unit active: the answer that ended the wait was that instant.
  if (ctx.settings.settleSeconds === 0 && seenTogether) return null;
  const until = Date.now() + ctx.settings.settleSeconds * 1000;
  const units = [...baseline.keys()];
  do {
    const states = await ctx.services.showAll(units);
    for (const [i, unit] of units.entries()) {
      const s = states[i]!;
      const restarts = baseline.get(unit)!;
      if (!unitIsUp(s)) return unitFailure(ctx, unit, `was no longer active during the settle window (now ${s.activeState}/${s.subState}, result ${s.result})`);
      if (s.nRestarts !== restarts) return unitFailure(ctx, unit, `restarted ${s.nRestarts - restarts} time(s) during the settle window`);
    }
    await sleep(Math.min(POLL_MS * 2, Math.max(0, until - Date.now())));
  } while (Date.now() < until);
  return null;
}

async function checkHttp(ctx: Context): Promise<GateFailure | null> {
  const { webHost, webPort, httpTimeoutSeconds } = ctx.settings;
  const deadline = Date.now() + httpTimeoutSeconds * 1000;
  let last = '';
  while (Date.now() < deadline) {
    const r = await probeHttp(webHost, webPort, Math.max(500, Math.min(5000, deadline - Date.now())));
    if (r.ok) return null;
    last = r.error ?? `HTTP ${r.status}`;
    await sleep(POLL_MS);
  }
  return {
    check: 'http',
    unit: 'smolotchi-web.service',
    reason: `web UI did not answer on ${formatHostPort(webHost, webPort)} within ${httpTimeoutSeconds}s (${last})`,
    journal: await ctx.services.journal('smolotchi-web.service', 10).catch(() => []),
  };
}

export const HEALTH_CHECK_PATH = path.join('packaging', 'health-check');

/** The release's own check, if it ships one: must exit 0 within its timeout. */
async function runReleaseCheck(ctx: Context, releaseDir: string, version: string): Promise<GateFailure | null | 'absent'> {
  const script = path.join(releaseDir, HEALTH_CHECK_PATH);
  try {
    await access(script, constants.X_OK);
  } catch {
    return 'absent';
  }
  // Release code: as the service user, with the variables below and nothing of root's environment.
  const r = await runAsService(script, [], {
    as: ctx.serviceIdentity(),
    cwd: releaseDir,
    timeoutMs: ctx.settings.healthCheckTimeoutSeconds * 1000,
    env: {
      SMOLOTCHI_RELEASE_VERSION: version,
      SMOLOTCHI_RELEASE_DIR: releaseDir,
      SMOLOTCHI_WEB_HOST: ctx.settings.webHost,
      SMOLOTCHI_WEB_PORT: String(ctx.settings.webPort),
    },
  });
  if (r.exitCode === 0) return null;
  const why = r.signal ? `killed by ${r.signal} (timeout ${ctx.settings.healthCheckTimeoutSeconds}s?)` : `exit ${r.exitCode}`;
  const out = tailLines(r.stderr || r.stdout, 3);
  return { check: 'health-check', reason: `packaging/health-check failed (${why})${out ? `: ${out.split('\n').pop()}` : ''}`, journal: [] };
}

/**
 * DESIGN step 11: prove the switched release healthy. Units active (notify: READY), still active
 * with unchanged NRestarts after the settle window; the web UI answers; the release's own check.
 */
export async function healthGate(ctx: Context, opts: { version: string; releaseDir: string; units: string[] }): Promise<GateResult> {
  const started = Date.now();
  const checks: string[] = [];
  const done = (failure?: GateFailure): GateResult => ({ ok: !failure, failure, durationMs: Date.now() - started, checks });
  const services = opts.units.filter((u) => u.endsWith('.service') || u.endsWith('.timer'));
  if (ctx.services.kind === 'systemd' && services.length > 0) {
    ctx.progress.step('gate: units active');
    const baseline = await waitActive(ctx, services);
    if ('check' in baseline) return done(baseline);
    checks.push(`units active: ${services.join(', ')}`);
    killPoint('gate-units-active', ctx.env);
    ctx.progress.step(`gate: settling ${ctx.settings.settleSeconds} s`, { countdownSeconds: ctx.settings.settleSeconds });
    const unsettled = await settle(ctx, baseline);
    if (unsettled) return done(unsettled);
    killPoint('gate-settled', ctx.env);
    checks.push(`stable for ${ctx.settings.settleSeconds}s`);
    if (ctx.settings.httpCheck && services.includes('smolotchi-web.service')) {
      ctx.progress.step('gate: web UI answers');
      const http = await checkHttp(ctx);
      if (http) return done(http);
      checks.push(`web UI answers on ${formatHostPort(ctx.settings.webHost, ctx.settings.webPort)}`);
    }
  }
  ctx.progress.step('gate: packaging/health-check');
  const own = await runReleaseCheck(ctx, opts.releaseDir, opts.version);
  if (own !== null && own !== 'absent') return done(own);
  if (own === null) checks.push('packaging/health-check passed');
  return done();
}
