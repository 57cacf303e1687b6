/**
 * Snapshots of the app's databases per deploy, in root's own folder: take, list, restore, prune.
 * Never restores through a link or from a snapshot without its manifest (an interrupted one).
 */

import { constants, readdirSync, readFileSync } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { backupAppDb, snapshotFacts, type DbFacts } from '../../adapters/app-db.js';
import type { Context } from '../context.js';
import { ReleaseError } from '../errors.js';
import { ensurePrivateDir } from '../state/private-dir.js';
import { copyHandle, fsyncDir, randomSuffix, writeFileAtomic } from '../fsutil.js';

/**
 * Snapshots of the app's databases, one folder per deploy that left a release:
 * `<snapshotsDir>/<deploy-id>/<n>-<name>.db` and `snapshot.json`, written last (a folder without
 * it is an interrupted snapshot, never restored). The folders are root's alone: a snapshot is
 * what root later writes back into the app's folder.
 */

export interface SnapshotDb extends DbFacts {
  /** The database's device path (SMOLOTCHI_DB or SMOLOTCHI_RELEASE_DATA_DBS). */
  path: string;
  file: string;
  bytes: number;
}

export interface Snapshot {
  deployId: number;
  /** The release whose data this is (the one being left), null on a first install. */
  fromVersion: string | null;
  toVersion: string;
  takenAt: string;
  databases: SnapshotDb[];
  dir: string;
}

export const MANIFEST = 'snapshot.json';

/** The databases of the app on this device, as device paths (settings) and paths under --root. */
export function appDatabases(ctx: Context): Array<{ device: string; file: string }> {
  const devices = [...new Set([ctx.settings.appDb, ...ctx.settings.dataDbs])];
  return devices.map((device) => ({ device, file: path.join(ctx.layout.root, device) }));
}

/** The snapshots live in the tool's root-only state folder, checked like the history's (no link, root's, not writable by others). */
async function snapshotsRoot(ctx: Context): Promise<string> {
  ensurePrivateDir(ctx.layout.toolStateDir, 'release tool state folder');
  ensurePrivateDir(ctx.layout.snapshotsDir, 'data snapshots folder');
  return ctx.layout.snapshotsDir;
}

/** Back up every app database that exists; null when none does (nothing to protect). */
export async function takeSnapshot(ctx: Context, deploy: { id: number; from: string | null; to: string }): Promise<Snapshot | null> {
  const root = await snapshotsRoot(ctx);
  const dir = path.join(root, String(deploy.id));
  const work = path.join(root, `.work-${randomSuffix()}`);
  // Inside a folder only root can write: nobody else can have planted these names.
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  await mkdir(work, { mode: 0o700 });
  try {
    const databases: SnapshotDb[] = [];
    for (const [i, db] of appDatabases(ctx).entries()) {
      const file = `${i + 1}-${path.basename(db.file)}`;
      const facts = await backupAppDb(db.file, path.join(dir, file), work);
      if (facts) databases.push({ path: db.device, file, bytes: (await stat(path.join(dir, file))).size, ...facts });
    }
    if (databases.length === 0) {
      await rm(dir, { recursive: true, force: true });
      return null;
    }
    const snapshot: Snapshot = { deployId: deploy.id, fromVersion: deploy.from, toVersion: deploy.to, takenAt: new Date().toISOString(), databases, dir };
    const { dir: _dir, ...manifest } = snapshot;
    await writeFileAtomic(path.join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n', 0o600);
    return snapshot;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const listOrNone = (dir: string): string[] => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};
const textOrNull = (file: string): string | null => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
};

/** Every complete snapshot on disk, newest deploy first. Read synchronously: small manifests, asked by every rollback. */
export async function listSnapshots(ctx: Context): Promise<Snapshot[]> {
  const names = listOrNone(ctx.layout.snapshotsDir);
  const out: Snapshot[] = [];
  for (const name of names.filter((n) => /^\d+$/.test(n))) {
    const dir = path.join(ctx.layout.snapshotsDir, name);
    const text = textOrNull(path.join(dir, MANIFEST));
    if (text === null) continue;
    try {
      out.push({ ...(JSON.parse(text) as Omit<Snapshot, 'dir'>), dir });
    } catch {
      continue; // a damaged manifest is not a snapshot
    }
  }
  return out.sort((a, b) => b.deployId - a.deployId);
}

/** The snapshot taken the last time `version` was left: its data as it last ran. */
export async function snapshotLeaving(ctx: Context, version: string): Promise<Snapshot | null> {
  return (await listSnapshots(ctx)).find((s) => s.fromVersion === version) ?? null;
}

export async function snapshotOfDeploy(ctx: Context, deployId: number): Promise<Snapshot | null> {
  return (await listSnapshots(ctx)).find((s) => s.deployId === deployId) ?? null;
}

export const snapshotDbFacts = (s: Snapshot, db: SnapshotDb): DbFacts => snapshotFacts(path.join(s.dir, db.file));

/**
 * Put one database back: a new file in the live folder (created exclusively, never through a
 * link), owned like the live database (the service user), fsynced, then renamed over it after the
 * old -wal/-shm are removed (a WAL left beside another database would be replayed into it).
 * The units are stopped by the caller.
 */
export async function restoreDb(ctx: Context, s: Snapshot, db: SnapshotDb): Promise<void> {
  const live = path.join(ctx.layout.root, db.path);
  const folder = path.dirname(live);
  const folderSt = await lstat(folder).catch(() => null);
  // A folder swapped for a link would send root's write elsewhere.
  if (!folderSt?.isDirectory()) throw new ReleaseError(`cannot restore ${db.path}: ${folder} is not a folder`);
  const liveSt = await lstat(live).catch(() => null);
  if (liveSt && !liveSt.isFile()) throw new ReleaseError(`cannot restore ${db.path}: something other than a file is in its place`);
  const owner = liveSt ?? folderSt;
  const tmp = path.join(folder, `.${path.basename(live)}.restore-${randomSuffix()}`);
  const out = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    const from = await open(path.join(s.dir, db.file), constants.O_RDONLY | constants.O_NOFOLLOW);
    await copyHandle(from, out).finally(() => from.close());
    await out.chown(owner.uid, owner.gid);
    await out.chmod(liveSt ? liveSt.mode & 0o666 : 0o640);
    await out.sync();
  } catch (err) {
    await out.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await out.close();
  for (const side of ['-wal', '-shm', '-journal']) await rm(live + side, { force: true });
  await rename(tmp, live);
  fsyncDir(folder);
}

/** Remove snapshots of releases no longer on disk, and all but the newest one per release. */
export async function pruneSnapshots(ctx: Context, releasesOnDisk: string[], dryRun = false): Promise<number[]> {
  const seen = new Set<string | null>();
  const remove: Snapshot[] = [];
  for (const s of await listSnapshots(ctx)) {
    const keep = s.fromVersion !== null && releasesOnDisk.includes(s.fromVersion) && !seen.has(s.fromVersion);
    seen.add(s.fromVersion);
    if (!keep) remove.push(s);
  }
  if (dryRun) return remove.map((s) => s.deployId);
  for (const s of remove) await rm(s.dir, { recursive: true, force: true });
  // Folders without a manifest are snapshots a crash interrupted (the caller holds the lock).
  const complete = new Set((await listSnapshots(ctx)).map((s) => path.basename(s.dir)));
  for (const name of await readdir(ctx.layout.snapshotsDir).catch(() => [] as string[])) {
    if (!complete.has(name)) await rm(path.join(ctx.layout.snapshotsDir, name), { recursive: true, force: true });
  }
  return remove.map((s) => s.deployId);
}

/** Bytes the next snapshot needs: the live databases and their WALs. */
export async function liveDataBytes(ctx: Context): Promise<number> {
  let total = 0;
  for (const db of appDatabases(ctx)) {
    for (const suffix of ['', '-wal']) total += await lstat(db.file + suffix).then((s) => (s.isFile() ? s.size : 0), () => 0);
  }
  return total;
}
