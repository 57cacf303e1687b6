import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootDevice, currentVersion, explain, servedVersion, smolotchi, sandboxAvailable, waitFor, type Sandbox } from '../support/sandbox.js';

// The app migrates its database when its core starts. A release that migrates the schema and
// whose web then fails is rolled back (exit 5), and its data with it: the old release runs on
// the old schema with the rows written before the upgrade.
const available = sandboxAvailable();

// Read as the service user (root would create root-owned -wal/-shm files the app cannot write).
const READ_DB = `
import json, sqlite3
con = sqlite3.connect("file:/var/lib/smolotchi/events.db?mode=ro", uri=True)
schema = con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
rows = con.execute("SELECT id, version FROM events ORDER BY id").fetchall()
columns = [c[1] for c in con.execute("PRAGMA table_info(events)")]
print(json.dumps({"schema": schema, "rows": rows, "columns": columns}))
`;
interface DbState {
  schema: number;
  rows: Array<[number, string]>;
  columns: string[];
}

async function readDb(sb: Sandbox): Promise<DbState | null> {
  const r = await sb.exec(['runuser', '-u', 'smolotchi', '--', '/usr/bin/python3', '-c', READ_DB]);
  return r.exitCode === 0 ? (JSON.parse(r.stdout) as DbState) : null;
}

describe.skipIf(!available)('e2e: app data across a failed upgrade on a real systemd', () => {
  let sb: Sandbox;

  beforeAll(async () => {
    ({ sb } = await bootDevice(
      [
        { version: '1.0.0', schema: 1 },
        { version: '2.0.0', schema: 2, behaviour: 'web-never-starts' },
      ],
      { install: '1.0.0' },
    ));
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it('after exit 5 the old release runs on the old schema with the rows written before the upgrade', async () => {
    const before = await waitFor(() => readDb(sb), (s) => (s?.rows.length ?? 0) > 0);
    expect(before, 'the 1.0.0 core never wrote its database').toMatchObject({ schema: 1 });

    const r = await smolotchi(sb, ['release', 'install', '2.0.0']);
    expect(r.exitCode, explain(r)).toBe(5);
    expect(r.stdout).toMatch(/app data restored from the snapshot of .*\/var\/lib\/smolotchi\/events\.db \(schema 1\)/);
    expect(await currentVersion(sb)).toBe('1.0.0');
    expect(await servedVersion(sb)).toBe('1.0.0');
    // The failed release really migrated before its web failed: the restore undid something.
    const journal = await sb.exec(['journalctl', '--no-pager', '-o', 'cat', '-u', 'smolotchi-core.service']);
    expect(journal.stdout).toContain('smolotchi 2.0.0: database /var/lib/smolotchi/events.db at schema 2');

    // 1.0.0's core has started again on the restored file and written its row.
    const after = await waitFor(() => readDb(sb), (s) => (s?.rows.length ?? 0) > before!.rows.length);
    expect(after?.schema).toBe(1);
    expect(after?.columns).not.toContain('detail');
    expect(after?.rows.slice(0, before!.rows.length)).toEqual(before!.rows);
    expect(after?.rows.map(([, v]) => v)).not.toContain('2.0.0');
    // Restored as the service user's file, with nothing of the failed release's WAL beside it.
    const owner = await sb.exec(['stat', '-c', '%U', '/var/lib/smolotchi/events.db']);
    expect(owner.stdout.trim()).toBe('smolotchi');
  });
});
