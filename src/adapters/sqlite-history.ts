/**
 * The deploy history, marks and state as SQL over one open better-sqlite3 connection.
 * Never opens, checks or migrates the file itself (history-db.ts does), and decides no policy.
 */

import type Database from 'better-sqlite3';
import type { DeployKind, DeployRow, DeployStatus, HistoryStore, MarkEvent, MarkSource, NewDeploy, ReleaseMark, SnapshotRecord } from '../core/state/history.js';

type Db = Database.Database;

const nowIso = () => new Date().toISOString();

interface RawDeploy {
  id: number;
  kind: DeployKind;
  from_version: string | null;
  to_version: string | null;
  status: DeployStatus;
  step: string | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  source: string | null;
  commit_sha: string | null;
  sha256: string | null;
  user: string | null;
  pid: number | null;
  error: string | null;
  parent_id: number | null;
}

function toRow(r: RawDeploy): DeployRow {
  return {
    id: r.id,
    kind: r.kind,
    fromVersion: r.from_version,
    toVersion: r.to_version,
    status: r.status,
    step: r.step,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    durationMs: r.duration_ms,
    source: r.source,
    commit: r.commit_sha,
    sha256: r.sha256,
    user: r.user,
    pid: r.pid,
    error: r.error,
    parentId: r.parent_id,
  };
}

interface RawMark {
  version: string;
  state: 'good' | 'bad';
  reason: string | null;
  marked_at: string;
  marked_by: MarkSource | null;
}

const toMark = (r: RawMark): ReleaseMark => ({ version: r.version, state: r.state, reason: r.reason, markedAt: r.marked_at, markedBy: r.marked_by });

/** The deploy history, marks and state, as SQL over one open connection. */
export class SqliteHistory implements HistoryStore {
  private deferring = false;
  /** Each statement compiled once per connection: a rollback writes a dozen journal steps. */
  private readonly statements = new Map<string, Database.Statement>();
  constructor(private readonly db: Db) {}

  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.db.prepare(text)));
    return statement;
  }

  // In WAL mode the log is appended in order, so the next synchronous=FULL commit's fsync makes
  // these frames durable too; synchronous=NORMAL skips only this commit's own fsync.
  deferSync<T>(write: () => T): T {
    if (this.deferring) return write();
    const before = Number(this.db.pragma('synchronous', { simple: true }));
    this.db.pragma('synchronous = NORMAL');
    this.deferring = true;
    try {
      return write();
    } finally {
      this.deferring = false;
      this.db.pragma(`synchronous = ${before}`);
    }
  }

  beginDeploy(d: NewDeploy): number {
    const info = this.sql(
      `INSERT INTO deploys (kind, from_version, to_version, status, step, started_at, source, user, pid, parent_id)
       VALUES (?, ?, ?, 'running', 'start', ?, ?, ?, ?, ?)`,
    ).run(d.kind, d.fromVersion, d.toVersion, nowIso(), d.source ?? null, d.user, d.pid, d.parentId ?? null);
    return Number(info.lastInsertRowid);
  }

  step(id: number, step: string): void {
    this.db.transaction(() => {
      const seq = (this.sql('SELECT COUNT(*) AS n FROM deploy_steps WHERE deploy_id = ?').get(id) as { n: number }).n;
      this.sql('INSERT INTO deploy_steps (deploy_id, seq, step, started_at) VALUES (?, ?, ?, ?)').run(id, seq + 1, step, nowIso());
      this.sql('UPDATE deploys SET step = ? WHERE id = ?').run(step, id);
    })();
  }

  steps(id: number): string[] {
    return (this.sql('SELECT step FROM deploy_steps WHERE deploy_id = ? ORDER BY seq').all(id) as { step: string }[]).map((r) => r.step);
  }

  annotate(id: number, fields: { toVersion?: string; source?: string; commit?: string; sha256?: string }): void {
    this.sql(
      `UPDATE deploys SET to_version = COALESCE(?, to_version), source = COALESCE(?, source),
       commit_sha = COALESCE(?, commit_sha), sha256 = COALESCE(?, sha256) WHERE id = ?`,
    ).run(fields.toVersion ?? null, fields.source ?? null, fields.commit ?? null, fields.sha256 ?? null, id);
  }

  finishDeploy(id: number, status: Exclude<DeployStatus, 'running'>, error?: string): void {
    const row = this.sql('SELECT started_at FROM deploys WHERE id = ?').get(id) as { started_at: string } | undefined;
    const finished = nowIso();
    const duration = row ? Date.parse(finished) - Date.parse(row.started_at) : null;
    this.sql('UPDATE deploys SET status = ?, finished_at = ?, duration_ms = ?, error = ? WHERE id = ?')
      .run(status, finished, duration, error ?? null, id);
  }

  /** Newest first, `before` an id (a page further back); a rowid range, never a scan of every deploy. */
  listDeploys(limit = 50, before = Number.MAX_SAFE_INTEGER): DeployRow[] {
    return (this.sql('SELECT * FROM deploys WHERE id < ? ORDER BY id DESC LIMIT ?').all(before, limit) as RawDeploy[]).map(toRow);
  }

  getDeploy(id: number): DeployRow | null {
    const r = this.sql('SELECT * FROM deploys WHERE id = ?').get(id) as RawDeploy | undefined;
    return r ? toRow(r) : null;
  }

  runningDeploys(): DeployRow[] {
    return (this.sql("SELECT * FROM deploys WHERE status = 'running' ORDER BY id").all() as RawDeploy[]).map(toRow);
  }

  setMark(version: string, state: 'good' | 'bad', reason: string | null, deployId: number | null, by: { source: MarkSource; user?: string | null } = { source: 'gate' }): void {
    const at = nowIso();
    this.db.transaction(() => {
      this.sql(
        `INSERT INTO release_marks (version, state, reason, marked_at, deploy_id, marked_by) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (version) DO UPDATE SET state = excluded.state, reason = excluded.reason,
         marked_at = excluded.marked_at, deploy_id = excluded.deploy_id, marked_by = excluded.marked_by`,
      ).run(version, state, reason, at, deployId, by.source);
      this.sql('INSERT INTO mark_events (version, state, reason, marked_by, user, marked_at, deploy_id) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(version, state, reason, by.source, by.user ?? null, at, deployId);
    })();
  }

  marks(): Map<string, ReleaseMark> {
    const rows = this.sql('SELECT version, state, reason, marked_at, marked_by FROM release_marks').all() as RawMark[];
    return new Map(rows.map((r) => [r.version, toMark(r)]));
  }

  markEvents(limit = 50): MarkEvent[] {
    const rows = this.sql('SELECT * FROM mark_events ORDER BY id DESC LIMIT ?').all(limit) as (RawMark & { id: number; user: string | null; deploy_id: number | null })[];
    return rows.map((r) => ({ ...toMark(r), id: r.id, user: r.user, deployId: r.deploy_id }));
  }

  /**
   * Versions current after a successful deploy (or a history rebuilt around them), most recent
   * first. One seek per good mark through deploys_version (migration 005), never a scan of deploys.
   */
  goodHistory(): string[] {
    const rows = this.sql(
      `SELECT v FROM (
         SELECT m.version AS v,
           (SELECT d.id FROM deploys d WHERE d.to_version = m.version AND d.status = 'succeeded'
              AND d.kind IN ('install', 'rollback', 'auto-rollback', 'recover') ORDER BY d.id DESC LIMIT 1) AS last
         FROM release_marks m WHERE m.state = 'good')
       WHERE last IS NOT NULL ORDER BY last DESC`,
    ).all() as { v: string }[];
    return rows.map((r) => r.v);
  }

  tagCommit(version: string): string | null {
    const r = this.sql('SELECT commit_sha FROM tag_commits WHERE version = ?').get(version) as { commit_sha: string } | undefined;
    return r?.commit_sha ?? null;
  }

  recordTagCommit(version: string, commit: string): void {
    this.sql('INSERT OR IGNORE INTO tag_commits (version, commit_sha, first_seen) VALUES (?, ?, ?)').run(version, commit, nowIso());
  }

  recordSnapshot(s: SnapshotRecord): void {
    const dbs = s.databases.map((d) => ({ path: d.path, schemaVersion: d.schemaVersion, bytes: d.bytes }));
    this.sql('INSERT OR REPLACE INTO data_snapshots (deploy_id, from_version, to_version, taken_at, databases) VALUES (?, ?, ?, ?, ?)')
      .run(s.deployId, s.fromVersion, s.toVersion, s.takenAt, JSON.stringify(dbs));
  }

  markSnapshotRestored(deployId: number, byDeploy: number): void {
    this.sql('UPDATE data_snapshots SET restored_at = ?, restored_by = ? WHERE deploy_id = ?').run(nowIso(), byDeploy, deployId);
  }

  getState(key: string): string | null {
    const r = this.sql('SELECT value FROM system_state WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value ?? null;
  }

  setState(key: string, value: string | null): void {
    if (value === null) this.sql('DELETE FROM system_state WHERE key = ?').run(key);
    else this.sql('INSERT INTO system_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  pragmas(): { journalMode: string; synchronous: number; busyTimeout: number } {
    return {
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: Number(this.db.pragma('synchronous', { simple: true })),
      busyTimeout: Number(this.db.pragma('busy_timeout', { simple: true })),
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
