/**
 * One deploy row, each step journaled in SQLite before it starts, for the next command's recovery.
 * Never starts a step before its name is recorded: an interrupted run must show where it stopped.
 */

import type { Context } from '../context.js';
import type { DeployKind, DeployStatus, HistoryStore } from './history.js';
import { killPoint } from '../killpoint.js';
import { userName } from './proc.js';

/**
 * `deferSync`: the record is committed (a killed process loses nothing) but its fsync is left to
 * the next record. Only where nothing outside the database changes before that next record: a
 * power cut then loses only records of work that left no trace, and recovery sees the step before.
 */
export interface Durability {
  deferSync?: boolean;
}

/**
 * One deploy row, its steps journaled in SQLite before each starts, so an interrupted run is
 * visible (and its step known) to the next command's recovery.
 */
export class DeployJournal {
  private finished = false;
  private constructor(
    private readonly store: HistoryStore,
    readonly id: number,
    private readonly ctx: Pick<Context, 'env' | 'progress' | 'interrupt'>,
  ) {}

  static begin(
    ctx: Context,
    kind: DeployKind,
    fromVersion: string | null,
    toVersion: string | null,
    extra: { source?: string | null; parentId?: number | null } & Durability = {},
  ): DeployJournal {
    const store = ctx.history();
    const user = invokingUser(ctx.env);
    const write = () => store.beginDeploy({ kind, fromVersion, toVersion, source: extra.source ?? null, user, pid: process.pid, parentId: extra.parentId ?? null });
    const id = extra.deferSync ? store.deferSync(write) : write();
    return new DeployJournal(store, id, ctx);
  }

  /**
   * Record the step, then (test hook) die there if asked to. Every step is shown as progress, and
   * is a safe point for Ctrl-C/SIGTERM: stopping here is exactly the crash recovery already undoes.
   */
  step(name: string, opts: Durability = {}): void {
    this.ctx.progress.step(name);
    if (opts.deferSync) this.store.deferSync(() => this.store.step(this.id, name));
    else this.store.step(this.id, name);
    killPoint(name, this.ctx.env);
    this.ctx.interrupt.safePoint(name);
  }

  annotate(fields: { toVersion?: string; source?: string; commit?: string; sha256?: string }): void {
    this.store.annotate(this.id, fields);
  }

  finish(status: Exclude<DeployStatus, 'running'>, error?: string): void {
    if (this.finished) return;
    this.finished = true;
    this.store.finishDeploy(this.id, status, error);
  }

  get isFinished(): boolean {
    return this.finished;
  }
}

/** Who ran the command, as the history records it: the sudo caller when there is one. */
export function invokingUser(env: NodeJS.ProcessEnv): string {
  return env.SUDO_USER ? `${env.SUDO_USER} (sudo)` : userName();
}
