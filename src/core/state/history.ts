/**
 * The audit log and good/bad marks as the domain sees them: rows, marks, the HistoryStore contract.
 * Never touches SQLite itself: that lives in src/adapters/.
 */

export type DeployKind = 'install' | 'rollback' | 'auto-rollback' | 'prune' | 'recover';
export type DeployStatus = 'running' | 'succeeded' | 'failed' | 'rolled-back' | 'interrupted' | 'degraded';

export interface DeployRow {
  id: number;
  kind: DeployKind;
  fromVersion: string | null;
  toVersion: string | null;
  status: DeployStatus;
  step: string | null;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  source: string | null;
  commit: string | null;
  sha256: string | null;
  user: string | null;
  pid: number | null;
  error: string | null;
  parentId: number | null;
}

export interface NewDeploy {
  kind: DeployKind;
  fromVersion: string | null;
  toVersion: string | null;
  source?: string | null;
  user: string;
  pid: number;
  parentId?: number | null;
}

/** Who set a mark: the health gate of a deploy, a rebuilt history, or an operator (`release mark`). */
export type MarkSource = 'gate' | 'rebuild' | 'operator';

export interface ReleaseMark {
  version: string;
  state: 'good' | 'bad';
  reason: string | null;
  markedAt: string;
  /** null for marks set before marks recorded their source. */
  markedBy: MarkSource | null;
}

/** One mark as it was set, for the history. */
export interface MarkEvent extends ReleaseMark {
  id: number;
  user: string | null;
  deployId: number | null;
}

/** A data snapshot as the history records it (the files are in the snapshots folder). */
export interface SnapshotRecord {
  deployId: number;
  fromVersion: string | null;
  toVersion: string;
  takenAt: string;
  databases: Array<{ path: string; schemaVersion: number; bytes: number }>;
}

export interface HistoryStore {
  beginDeploy(d: NewDeploy): number;
  step(id: number, step: string): void;
  steps(id: number): string[];
  annotate(id: number, fields: { toVersion?: string; source?: string; commit?: string; sha256?: string }): void;
  finishDeploy(id: number, status: Exclude<DeployStatus, 'running'>, error?: string): void;
  listDeploys(limit?: number, before?: number): DeployRow[];
  getDeploy(id: number): DeployRow | null;
  runningDeploys(): DeployRow[];
  setMark(version: string, state: 'good' | 'bad', reason: string | null, deployId: number | null, by?: { source: MarkSource; user?: string | null }): void;
  marks(): Map<string, ReleaseMark>;
  /** Marks as they were set, newest first. */
  markEvents(limit?: number): MarkEvent[];
  goodHistory(): string[];
  tagCommit(version: string): string | null;
  recordTagCommit(version: string, commit: string): void;
  recordSnapshot(s: SnapshotRecord): void;
  markSnapshotRestored(deployId: number, byDeploy: number): void;
  getState(key: string): string | null;
  setState(key: string, value: string | null): void;
  /** False once a read met a damaged page (a read-only store then answers as if empty). */
  readable?(): boolean;
  /**
   * Run `write` committed but not forced to disk: the next ordinary commit (or the close) forces it
   * with everything before it. Only for writes after which nothing outside the database changes
   * before that next commit; a killed process loses nothing, a power cut only these writes.
   */
  deferSync<T>(write: () => T): T;
  close(): void;
}

/** A history that exists and could be read for everything asked so far. */
export const historyReadable = (store: HistoryStore | null): boolean => store !== null && store.readable?.() !== false;

/** system_state key holding the degraded reason while a human is needed. */
export const DEGRADED_KEY = 'degraded';
