import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** Everything a refused command must leave alone: the tree under root (names, file sizes and mtimes, the history file). */
export function snapshot(root: string): string {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const s = statSync(p, { throwIfNoEntry: false });
      if (!s) continue;
      const rel = path.relative(root, p);
      // The lock comes and goes in /run (a tmpfs on the device); everything else must stay as it was.
      // SQLite's -wal/-shm come and go with any reader; the database file itself must not change.
      if (rel === 'run' || /\.db-(wal|shm)$/.test(rel)) continue;
      out.push(s.isDirectory() ? `${rel}/` : `${rel} ${s.size} ${s.mtimeMs}`);
      if (s.isDirectory() && !p.endsWith('.venv')) walk(p);
    }
  };
  walk(root);
  return out.join('\n');
}

/** What changed between two snapshots, one line per path: empty when nothing did. */
export function changes(a: string, b: string): string {
  const A = new Set(a.split('\n'));
  const B = new Set(b.split('\n'));
  return [...[...A].filter((x) => !B.has(x)).map((x) => `- ${x}`), ...[...B].filter((x) => !A.has(x)).map((x) => `+ ${x}`)].join('\n');
}

