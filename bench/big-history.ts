import Database from 'better-sqlite3';
import { migrate } from '../src/adapters/history-db.js';

/**
 * Years of deploys in one history file, written through the project's own migrations: `deploys`
 * rows (installs, rollbacks, prunes and recoveries over `versions`, mostly succeeded, some failed)
 * with `stepsEach` journal steps each, appended after whatever the file already holds.
 */
export function fillHistory(file: string, deploys: number, stepsEach: number, versions: string[]): void {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    migrate(db);
    const kinds = ['install', 'install', 'install', 'rollback', 'prune', 'recover'] as const;
    const insertDeploy = db.prepare(
      `INSERT INTO deploys (kind, from_version, to_version, status, step, started_at, finished_at, duration_ms, source, user, pid)
       VALUES (?, ?, ?, ?, 'finish', ?, ?, 1200, 'https://example.invalid/smolotchi.git', 'root', 4242)`,
    );
    const insertStep = db.prepare('INSERT INTO deploy_steps (deploy_id, seq, step, started_at) VALUES (?, ?, ?, ?)');
    const steps = ['lock', 'fetch', 'venv', 'units', 'gate', 'finish', 'prune'];
    const start = Date.parse('2020-01-01T00:00:00Z');
    db.transaction(() => {
      for (let i = 0; i < deploys; i++) {
        const kind = kinds[i % kinds.length]!;
        const to = kind === 'prune' ? null : versions[i % versions.length]!;
        const from = versions[(i + versions.length - 1) % versions.length]!;
        const status = i % 17 === 0 ? 'failed' : 'succeeded';
        const at = new Date(start + i * 60_000).toISOString();
        const id = Number(insertDeploy.run(kind, from, to, status, at, at).lastInsertRowid);
        for (let s = 0; s < stepsEach; s++) insertStep.run(id, s + 1, steps[s % steps.length]!, at);
      }
    })();
  } finally {
    db.close();
  }
}
