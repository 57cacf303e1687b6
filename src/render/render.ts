/**
 * Text and JSON for every command result; JSON has stable fields plus schemaVersion.
 * Never decides, fetches or prints: it turns result objects into strings for src/cli.ts.
 */

import type { HistoryResult } from '../commands/history.js';
import type { InstallResult } from '../commands/install.js';
import type { ListResult } from '../commands/list.js';
import type { PruneResult } from '../commands/prune.js';
import type { RecoverResult } from '../commands/recover.js';
import type { RollbackResult } from '../commands/rollback.js';
import { dataLines } from './data.js';
import type { StatusResult } from '../commands/status.js';
import type { KeygenResult } from '../commands/keygen.js';
import type { PackResult } from '../commands/pack.js';
import type { VerifyResult } from '../commands/verify.js';
import type { MarkResult } from '../commands/mark.js';
import type { InitResult } from '../commands/init.js';
import { renderInit } from './init.js';
import { markedBy, renderMark } from './marks.js';
import { renderKeygen, renderPack, renderVerify } from './signing.js';
import { paint, type Paint } from './color.js';
import { dash, seconds, table } from './table.js';
import { when } from './time.js';

/** How text is shown: status words coloured on a terminal; times relative to now. */
export interface View {
  p: Paint;
  now: number;
}

export type CommandResult =
  | InstallResult | RollbackResult | HistoryResult | ListResult | StatusResult | PruneResult | RecoverResult
  | VerifyResult | KeygenResult | PackResult | InitResult | MarkResult;

export const SCHEMA_VERSION = 1;

/** JSON output: stable field names plus schemaVersion, so scripts can rely on them. */
export function renderJson(result: CommandResult): string {
  const { exitCode: _exit, ...rest } = result as CommandResult & { exitCode?: number };
  return JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...rest }, null, 2);
}

function renderInstall(r: InstallResult, { p }: View): string {
  switch (r.status) {
    case 'dry-run':
      return [`would install ${r.version} (current: ${dash(r.previous)}):`, ...r.plan.map((s, i) => `  ${i + 1}. ${s}`)].join('\n');
    case 'already-current':
      return `${r.version} is already current (use --force to re-apply units and re-run the health gate)`;
    case 'installed': {
      const from = r.previous ? ` (was ${r.previous})` : '';
      const id = r.commit ? ` commit ${r.commit.slice(0, 12)}` : r.sha256 ? ` sha256 ${r.sha256.slice(0, 12)}` : '';
      const lines = [`${p.good('installed')} ${r.version}${from}${id} in ${seconds(r.durationMs)}`];
      if (r.gate?.checks.length) lines.push(`health: ${r.gate.checks.join('; ')}`);
      if (r.venvReusedFrom) lines.push(`venv cloned from ${r.venvReusedFrom}${r.venvIncremental ? `; pip: +${r.venvIncremental.added.length} ~${r.venvIncremental.changed.length} -${r.venvIncremental.removed.length}` : ''}`);
      if (r.configSeeded) lines.push(`seeded ${r.configSeeded} from the release (web UI on 127.0.0.1; yours to edit)`);
      if (r.pruned.length) lines.push(`pruned: ${r.pruned.join(', ')}`);
      lines.push(...dataLines(r.data));
      return lines.join('\n');
    }
    case 'rolled-back': {
      const back = `${p.warn('rolled back')} to ${r.rolledBackTo ?? '(nothing installed before: units removed)'}`;
      const head =
        r.faultOf === 'environment'
          ? [`installing ${r.version} ${p.bad('failed')} after its restart, not by its own fault: ${r.failure}`, `${back}; nothing is marked bad`]
          : [`release ${r.version} ${p.bad('FAILED')} its health gate: ${r.failure}`, `${back}; ${r.version} is marked bad`];
      return [...head, ...dataLines(r.data)].join('\n');
    }
    case 'degraded':
      return `${p.bad('DEGRADED')}: ${r.failure}\nthe system is left as it is; see \`smolotchi release status\` for what to do (README: "Recovering from degraded")`;
  }
}

function renderRollback(r: RollbackResult, { p }: View): string {
  if (r.status === 'dry-run') return [`would roll back ${dash(r.from)} -> ${r.to}:`, ...r.plan.map((s, i) => `  ${i + 1}. ${s}`)].join('\n');
  const data = dataLines(r.data, r.dataComparison);
  if (r.status === 'rolled-back') return [`${p.good('rolled back')} ${dash(r.from)} -> ${r.to}`, ...data].join('\n');
  if (r.status === 'reverted' && r.faultOf === 'environment') {
    return [`rollback to ${r.to} failed after its restart, not by its own fault: ${r.failure}`, `${p.warn('went back')} to ${dash(r.from)}; nothing is marked bad`, ...data].join('\n');
  }
  if (r.status === 'reverted') return [`rollback to ${r.to} ${p.bad('FAILED')} its health gate: ${r.failure}`, `${p.warn('went back')} to ${dash(r.from)}; ${r.to} is marked bad`, ...data].join('\n');
  return `${p.bad('DEGRADED')}: ${r.failure}\nthe system is left as it is; see \`smolotchi release status\` for what to do (README: "Recovering from degraded")`;
}

const DEPLOY_STATUS: Record<string, keyof Paint> = { succeeded: 'good', failed: 'bad', degraded: 'bad', 'rolled-back': 'warn', interrupted: 'warn', running: 'warn' };

function renderHistory(r: HistoryResult, { p, now }: View): string {
  if (!r.historyAvailable) return 'no deploy history yet';
  const deploys = table(
    ['ID', 'STARTED', 'KIND', 'FROM', 'TO', 'STATUS', 'TOOK', 'USER', 'DETAIL'],
    r.deploys.map((d) => [
      String(d.id),
      when(d.startedAt, now),
      d.kind,
      dash(d.fromVersion),
      dash(d.toVersion),
      p[DEPLOY_STATUS[d.status] ?? 'dim'](d.status),
      seconds(d.durationMs),
      dash(d.user),
      d.error ?? (d.commit ? `commit ${d.commit.slice(0, 12)}` : d.sha256 ? `sha256 ${d.sha256.slice(0, 12)}` : ''),
    ]),
  );
  // Operator marks are decisions worth seeing beside the deploys; the gate's own marks are in the deploy rows.
  const operator = r.marks.filter((m) => m.markedBy === 'operator');
  if (operator.length === 0) return deploys;
  const marks = table(
    ['MARKED', 'VERSION', 'MARK', 'BY', 'REASON'],
    operator.map((m) => [when(m.markedAt, now), m.version, m.state, dash(m.user), dash(m.reason)]),
  );
  return `${deploys}\n\noperator marks:\n${marks}`;
}

function renderList(r: ListResult, { p, now }: View): string {
  if (r.releases.length === 0) return 'no releases installed';
  return table(
    ['VERSION', 'STATE', 'INSTALLED', 'SOURCE', 'MARK'],
    r.releases.map((x) => [
      x.version,
      [x.current && p.good('current'), x.lastGood && 'last-good', x.rollbackTarget && 'rollback-target', x.bad && p.bad('bad'), !x.complete && p.warn('incomplete')]
        .filter(Boolean)
        .join(',') || '-',
      when(x.installedAt, now),
      dash(x.source),
      x.mark ? `${x.mark.state} ${markedBy(x.mark)}${x.mark.reason ? `: ${x.mark.reason}` : ''}`.trim() : '-',
    ]),
  );
}

function renderStatus(r: StatusResult, { p, now }: View): string {
  const last = r.lastDeploy;
  const lines = [
    `current:          ${dash(r.current)}${r.current && !r.currentComplete ? ' (INCOMPLETE)' : ''}`,
    `last good:        ${dash(r.lastGood)}`,
    `rollback target:  ${dash(r.rollbackTarget)}`,
    `bad releases:     ${r.badMarks.length ? r.badMarks.map((m) => `${m.version} (${[markedBy(m), m.reason].filter(Boolean).join(': ')})`).join(', ') : '-'}`,
    `state:            ${r.degraded ? `${p.bad('DEGRADED')}: ${r.degradedReason}` : p.good('ok')}`,
    `last deploy:      ${last ? `#${last.id} ${last.kind} ${dash(last.fromVersion)} -> ${dash(last.toVersion)} ${p[DEPLOY_STATUS[last.status] ?? 'dim'](last.status)}, ${when(last.startedAt, now)}${last.error ? `: ${last.error}` : ''}` : '-'}`,
    `units:            ${r.drift ? `${p.warn('DRIFT')} (${r.driftFiles.join(', ')})` : 'match the current release'}`,
    ...Object.entries(r.loosened).map(([unit, what]) => `  ${unit} loosens: ${what.join(', ')}`),
    `lock:             ${r.lock ? `held by pid ${r.lock.pid} (${r.lock.purpose}) since ${when(r.lock.since, now)}${r.lock.alive ? '' : ' [holder is dead]'}` : 'free'}`,
  ];
  if (!r.historyAvailable) lines.push('history:          unavailable (no readable releases.db)');
  if (r.degraded && r.current) {
    lines.push(
      `hint: fix the cause, then \`smolotchi release rollback --to ${r.current}\` re-applies its units and re-runs the gate;`,
      `      or \`smolotchi release mark good ${r.current}\` once you have checked it yourself (README: "Recovering from degraded")`,
    );
  }
  return lines.join('\n');
}

function renderPrune(r: PruneResult): string {
  const verb = r.status === 'dry-run' ? 'would remove' : 'removed';
  const prot = Object.entries(r.protected).map(([v, why]) => `${v} (${why})`);
  const snaps = r.snapshotsRemoved.length ? `${verb} app data snapshots: ${r.snapshotsRemoved.join(', ')}` : '';
  return [`${verb}: ${r.removed.length ? r.removed.join(', ') : 'nothing'}`, `kept: ${r.kept.join(', ') || '-'}`, prot.length ? `protected: ${prot.join(', ')}` : '', snaps]
    .filter(Boolean)
    .join('\n');
}

function renderRecover(r: RecoverResult): string {
  const rep = r.report;
  if (!r.changed) return `nothing to recover; current is ${dash(rep.current)}`;
  const lines = [];
  for (const i of rep.interrupted) lines.push(`deploy #${i.id} (${i.kind}) was interrupted at ${i.step}`);
  if (rep.stagingRemoved) lines.push(`removed ${rep.stagingRemoved} staging folder(s)`);
  if (rep.incompleteRemoved.length) lines.push(`removed incomplete release(s): ${rep.incompleteRemoved.join(', ')}`);
  if (rep.revertedTo) lines.push(`went back to ${rep.revertedTo} (the switched-to release was never proven healthy)`);
  if (rep.dataRestored.length) lines.push(`put the app's data back from before the undone switch: ${rep.dataRestored.join(', ')}`);
  if (rep.unitsRepaired) lines.push('re-applied the current release\'s units');
  if (r.restarted.length) lines.push(`restarted: ${r.restarted.join(', ')}`);
  lines.push(`current is ${dash(rep.current)}`);
  return lines.join('\n');
}

export function renderText(result: CommandResult, opts: { color?: boolean; now?: number } = {}): string {
  const view: View = { p: paint(Boolean(opts.color)), now: opts.now ?? Date.now() };
  switch (result.command) {
    case 'install':
      return renderInstall(result, view);
    case 'rollback':
      return renderRollback(result, view);
    case 'history':
      return renderHistory(result, view);
    case 'list':
      return renderList(result, view);
    case 'status':
      return renderStatus(result, view);
    case 'prune':
      return renderPrune(result);
    case 'recover':
      return renderRecover(result);
    case 'verify':
      return renderVerify(result);
    case 'keygen':
      return renderKeygen(result);
    case 'pack':
      return renderPack(result);
    case 'init':
      return renderInit(result);
    case 'mark':
      return renderMark(result);
  }
}
