import type { HistoryResult } from '../commands/history.js';
import type { InstallResult } from '../commands/install.js';
import type { ListResult } from '../commands/list.js';
import type { PruneResult } from '../commands/prune.js';
import type { RecoverResult } from '../commands/recover.js';
import type { RollbackResult } from '../commands/rollback.js';
import type { StatusResult } from '../commands/status.js';
import type { KeygenResult } from '../commands/keygen.js';
import type { PackResult } from '../commands/pack.js';
import type { VerifyResult } from '../commands/verify.js';
import type { InitResult } from '../commands/init.js';
import { renderInit } from './init.js';
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
  | VerifyResult | KeygenResult | PackResult | InitResult;

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
      if (r.venvReusedFrom) lines.push(`venv cloned from ${r.venvReusedFrom}`);
      if (r.configSeeded) lines.push(`seeded ${r.configSeeded} from the release (web UI on 127.0.0.1; yours to edit)`);
      if (r.pruned.length) lines.push(`pruned: ${r.pruned.join(', ')}`);
      return lines.join('\n');
    }
    case 'rolled-back':
      return `release ${r.version} ${p.bad('FAILED')} its health gate: ${r.failure}\n${p.warn('rolled back')} to ${r.rolledBackTo ?? '(nothing installed before: units removed)'}; ${r.version} is marked bad`;
    case 'degraded':
      return `${p.bad('DEGRADED')}: ${r.failure}\nthe system is left as it is; see \`smolotchi release status\` and the README's "Recovering from degraded"`;
  }
}

function renderRollback(r: RollbackResult, { p }: View): string {
  if (r.status === 'dry-run') return [`would roll back ${dash(r.from)} -> ${r.to}:`, ...r.plan.map((s, i) => `  ${i + 1}. ${s}`)].join('\n');
  if (r.status === 'rolled-back') return `${p.good('rolled back')} ${dash(r.from)} -> ${r.to}`;
  if (r.status === 'reverted') return `rollback to ${r.to} ${p.bad('FAILED')} its health gate: ${r.failure}\n${p.warn('went back')} to ${dash(r.from)}`;
  return `${p.bad('DEGRADED')}: ${r.failure}`;
}

const DEPLOY_STATUS: Record<string, keyof Paint> = { succeeded: 'good', failed: 'bad', degraded: 'bad', 'rolled-back': 'warn', interrupted: 'warn', running: 'warn' };

function renderHistory(r: HistoryResult, { p, now }: View): string {
  if (!r.historyAvailable) return 'no deploy history yet';
  return table(
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
}

function renderList(r: ListResult, { p, now }: View): string {
  if (r.releases.length === 0) return 'no releases installed';
  return table(
    ['VERSION', 'STATE', 'INSTALLED', 'SOURCE'],
    r.releases.map((x) => [
      x.version,
      [x.current && p.good('current'), x.lastGood && 'last-good', x.rollbackTarget && 'rollback-target', x.bad && p.bad('bad'), !x.complete && p.warn('incomplete')]
        .filter(Boolean)
        .join(',') || '-',
      when(x.installedAt, now),
      dash(x.source),
    ]),
  );
}

function renderStatus(r: StatusResult, { p, now }: View): string {
  const last = r.lastDeploy;
  const lines = [
    `current:          ${dash(r.current)}${r.current && !r.currentComplete ? ' (INCOMPLETE)' : ''}`,
    `last good:        ${dash(r.lastGood)}`,
    `rollback target:  ${dash(r.rollbackTarget)}`,
    `bad releases:     ${r.bad.length ? r.bad.join(', ') : '-'}`,
    `state:            ${r.degraded ? `${p.bad('DEGRADED')}: ${r.degradedReason}` : p.good('ok')}`,
    `last deploy:      ${last ? `#${last.id} ${last.kind} ${dash(last.fromVersion)} -> ${dash(last.toVersion)} ${p[DEPLOY_STATUS[last.status] ?? 'dim'](last.status)}, ${when(last.startedAt, now)}${last.error ? `: ${last.error}` : ''}` : '-'}`,
    `units:            ${r.drift ? `${p.warn('DRIFT')} (${r.driftFiles.join(', ')})` : 'match the current release'}`,
    `lock:             ${r.lock ? `held by pid ${r.lock.pid} (${r.lock.purpose}) since ${when(r.lock.since, now)}${r.lock.alive ? '' : ' [holder is dead]'}` : 'free'}`,
  ];
  if (!r.historyAvailable) lines.push('history:          unavailable (no readable releases.db)');
  return lines.join('\n');
}

function renderPrune(r: PruneResult): string {
  const verb = r.status === 'dry-run' ? 'would remove' : 'removed';
  const prot = Object.entries(r.protected).map(([v, why]) => `${v} (${why})`);
  return [`${verb}: ${r.removed.length ? r.removed.join(', ') : 'nothing'}`, `kept: ${r.kept.join(', ') || '-'}`, prot.length ? `protected: ${prot.join(', ')}` : '']
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
  }
}
