import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fillHistory } from '../../bench/big-history.js';
import { migrate } from '../../src/adapters/history-db.js';
import { SqliteHistory } from '../../src/adapters/sqlite-history.js';

/**
 * status, list, history --limit N and rollback's target read the history through indexes, so they
 * stay fast after years of deploys. The check is SQLite's own query plan of every statement those
 * reads run (no timing): a "SCAN" of deploys or deploy_steps would read every row.
 */

interface Ran {
  sql: string;
  args: unknown[];
}

/** A connection that remembers each statement run through it, with its arguments. */
function recording(db: Database.Database, ran: Ran[]): Database.Database {
  return new Proxy(db, {
    get(target, prop) {
      if (prop !== 'prepare') {
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? v.bind(target) : v;
      }
      return (sql: string) => {
        const stmt = target.prepare(sql);
        return new Proxy(stmt, {
          get(s, p) {
            const v = Reflect.get(s, p, s) as unknown;
            if (typeof v !== 'function' || !['all', 'get', 'run'].includes(String(p))) return typeof v === 'function' ? v.bind(s) : v;
            return (...args: unknown[]) => {
              ran.push({ sql, args });
              return (v as (...a: unknown[]) => unknown).apply(s, args);
            };
          },
        });
      };
    },
  });
}

function plan(db: Database.Database, r: Ran): string[] {
  return (db.prepare(`EXPLAIN QUERY PLAN ${r.sql}`).all(...r.args) as { detail: string }[]).map((p) => p.detail);
}

describe('history reads go through indexes', () => {
  let dir: string;
  let db: Database.Database;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-history-plan-'));
    const file = path.join(dir, 'releases.db');
    // A few thousand rows through the real migrations, so the planner sees a non-trivial table.
    fillHistory(file, 2000, 5, ['1.0.0', '1.1.0', '1.2.0', '2.0.0']);
    db = new Database(file);
    migrate(db);
    for (const v of ['1.0.0', '1.1.0', '2.0.0']) db.prepare("INSERT INTO release_marks (version, state, marked_at) VALUES (?, 'good', '2026-01-01')").run(v);
    db.prepare("INSERT INTO release_marks (version, state, marked_at) VALUES ('1.2.0', 'bad', '2026-01-01')").run();
  });
  afterAll(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('what status, list, history and rollback read: no scan of deploys or deploy_steps', () => {
    const ran: Ran[] = [];
    const store = new SqliteHistory(recording(db, ran));
    expect(store.goodHistory()).toEqual(['2.0.0', '1.1.0', '1.0.0']);
    expect(store.listDeploys(20).map((d) => d.id)).toEqual(Array.from({ length: 20 }, (_, i) => 2000 - i));
    expect(store.listDeploys(5, 1000).map((d) => d.id)).toEqual([999, 998, 997, 996, 995]);
    store.marks();
    store.getState('degraded');
    store.runningDeploys();
    expect(store.steps(1500)).toHaveLength(5);
    store.getDeploy(1500);
    store.tagCommit('1.0.0');
    expect(ran.length).toBeGreaterThanOrEqual(9);

    const plans = ran.map((r) => ({ sql: r.sql.replace(/\s+/g, ' ').trim(), plan: plan(db, r) }));
    for (const p of plans) {
      const scans = p.plan.filter((d) => /^SCAN (deploys|deploy_steps|d|s)\b/.test(d));
      expect({ sql: p.sql, scans }).toEqual({ sql: p.sql, scans: [] });
    }
    // The good-history question uses the index migration 005 adds.
    const good = plans.find((p) => p.sql.includes('release_marks m'))!;
    expect(good.plan.join(' | ')).toContain('USING INDEX deploys_version');
  });

  it('a journal step counts its siblings through the primary key', () => {
    const ran: Ran[] = [];
    const store = new SqliteHistory(recording(db, ran));
    const id = store.beginDeploy({ kind: 'install', fromVersion: '2.0.0', toVersion: '2.1.0', user: 'root', pid: 1 });
    store.step(id, 'fetch');
    store.finishDeploy(id, 'succeeded');
    for (const r of ran.filter((x) => /^\s*SELECT/i.test(x.sql))) {
      expect(plan(db, r).filter((d) => d.startsWith('SCAN'))).toEqual([]);
    }
  });
});
