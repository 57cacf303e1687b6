/**
 * The work a rollback cannot skip, with none of its checks: run by the bench in a fresh node, as
 * `node rollback-work.js <dir> <unit-dir> <systemctl>`. It journals the deploy in SQLite (a row
 * and three durable steps, WAL, synchronous=FULL), reads and hashes the installed units, flips
 * `<dir>/current` between two folders with the parent fsynced, restarts core and then the other
 * units in two systemctl calls, and asks systemd once for their state. No lock, recovery, unit
 * rendering, policy, gate judgement, marks or output: what is left of a rollback's time once all
 * of ours but the SQLite driver is gone, so the bench can say how much of it is ours.
 */

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { Database, sqliteAddon } from '../src/adapters/sqlite-driver.js';

const [dir, unitDir, systemctl] = process.argv.slice(2);
if (!dir || !unitDir || !systemctl) throw new Error('usage: rollback-work.js <dir> <unit-dir> <systemctl>');

// SQLite loaded as every command of ours loads it (the one module of ours here: its driver).
const db = new Database(path.join(dir, 'journal.db'), sqliteAddon());
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec("CREATE TABLE IF NOT EXISTS deploys (id INTEGER PRIMARY KEY, step TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'running')");
const id = db.prepare("INSERT INTO deploys (step) VALUES ('start')").run().lastInsertRowid;
const step = (name: string, status = 'running') => db.prepare('UPDATE deploys SET step = ?, status = ? WHERE id = ?').run(name, status, id);

const units = readdirSync(unitDir).filter((f) => /^smolotchi-.*\.(service|timer)$/.test(f) && f !== 'smolotchi-release-check.service').sort();
const hash = createHash('sha256');
for (const unit of units) hash.update(readFileSync(path.join(unitDir, unit)));
hash.digest('hex');

step('flip');
const current = path.join(dir, 'current');
let target = 'releases/a';
try {
  if (readlinkSync(current) === target) target = 'releases/b';
} catch {
  mkdirSync(path.join(dir, 'releases', 'a'), { recursive: true });
  mkdirSync(path.join(dir, 'releases', 'b'), { recursive: true });
}
rmSync(`${current}.tmp`, { force: true });
symlinkSync(target, `${current}.tmp`);
renameSync(`${current}.tmp`, current);
const fd = openSync(dir, 'r');
fsyncSync(fd);
closeSync(fd);

function ctl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(systemctl!, ['--no-ask-password', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`systemctl ${args.join(' ')}: exit ${code}`))));
  });
}

step('restart');
const core = 'smolotchi-core.service';
// A service a timer triggers is the timer's to start, as in a deploy.
const rest = units.filter((u) => u !== core && !(u.endsWith('.service') && units.includes(u.replace(/\.service$/, '.timer'))));
await ctl(['restart', '--', core]);
if (rest.length) await ctl(['restart', '--', ...rest]);
await ctl(['show', '--property=Id,ActiveState,SubState,Result,NRestarts,MainPID', '--', core, ...rest.filter((u) => u.endsWith('.service'))]);
step('done', 'succeeded');
db.close();
