import { lstat, mkdir, readdir, readFile, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError } from './errors.js';
import { fsyncDir, writeFileAtomic } from './fsutil.js';
import type { RenderedFile, RenderedUnits } from './units.js';

/** The tool's boot-time check: rendered from the bundled templates only, whatever a release ships. */
export const TOOL_UNIT = 'smolotchi-release-check.service';
/** What `systemctl edit` writes: the operator's, never ours to compare or delete. */
export const OPERATOR_DROPIN = 'override.conf';
export const UNIT_NAME = /^smolotchi-[a-z0-9]+(?:-[a-z0-9]+)*\.(?:service|timer)$/;
// writeFileAtomic names its temp files `.<name>.<pid>-<hex>.tmp`; a crash can leave one behind.
const TEMP_NAME = /^\.(.+)\.\d+-[0-9a-f]+\.tmp$/;
const LINK_DIR = /\.(?:wants|requires|upholds)$/;

export interface UnitDiff {
  added: string[];
  changed: string[];
  removed: string[];
  /** Units with files installed that the rendered set no longer has. */
  removedUnits: string[];
  drift: boolean;
}

export const byPath = (a: RenderedFile, b: RenderedFile): number => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0);

const isUnitDir = (name: string) => name.endsWith('.d') && UNIT_NAME.test(name.slice(0, -2));
const isOurDropin = (name: string) => name.endsWith('.conf') && !name.startsWith('.') && name !== OPERATOR_DROPIN;
const unitOf = (relPath: string) => relPath.split('/')[0].replace(/\.d$/, '');

async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function kind(file: string): Promise<'file' | 'dir' | 'link' | 'other' | null> {
  try {
    const info = await lstat(file);
    return info.isFile() ? 'file' : info.isDirectory() ? 'dir' : info.isSymbolicLink() ? 'link' : 'other';
  } catch {
    return null;
  }
}

/** Our files in the unit dir: smolotchi-* units and the *.conf in their .d folders (symlinks, such as masks, are not ours). */
export async function readInstalledUnits(unitDir: string): Promise<RenderedFile[]> {
  const files: RenderedFile[] = [];
  for (const name of await list(unitDir)) {
    const full = path.join(unitDir, name);
    const what = await kind(full);
    if (what === 'file' && UNIT_NAME.test(name)) files.push({ relPath: name, content: await readFile(full, 'utf8') });
    if (what !== 'dir' || !isUnitDir(name)) continue;
    for (const conf of await list(full)) {
      const file = path.join(full, conf);
      if (isOurDropin(conf) && (await kind(file)) === 'file') files.push({ relPath: `${name}/${conf}`, content: await readFile(file, 'utf8') });
    }
  }
  return files.sort(byPath);
}

export function diffUnits(rendered: RenderedUnits, installed: RenderedFile[]): UnitDiff {
  const want = new Map(rendered.files.map((f) => [f.relPath, f.content]));
  const have = new Map(installed.map((f) => [f.relPath, f.content]));
  const added = [...want.keys()].filter((p) => !have.has(p)).sort();
  const changed = [...want.keys()].filter((p) => have.has(p) && have.get(p) !== want.get(p)).sort();
  const removed = [...have.keys()].filter((p) => !want.has(p)).sort();
  const removedUnits = [...new Set(removed.map(unitOf))].filter((u) => !rendered.units.includes(u)).sort();
  return { added, changed, removed, removedUnits, drift: added.length + changed.length + removed.length > 0 };
}

/** Defence in depth: whoever built `rendered`, nothing is written outside our names. */
function assertOwnedPath(relPath: string): void {
  const [top, conf, ...rest] = relPath.split('/');
  const ok = rest.length === 0 && (conf === undefined ? UNIT_NAME.test(top) : isUnitDir(top) && isOurDropin(conf));
  if (!ok) throw new ReleaseError(`refusing to write unit file ${JSON.stringify(relPath)}`);
}

async function removeStaleTemps(dir: string, isOurs: (name: string) => boolean): Promise<void> {
  for (const name of await list(dir)) {
    const m = TEMP_NAME.exec(name);
    if (m && isOurs(m[1])) await rm(path.join(dir, name), { force: true });
  }
}

async function writeIfChanged(file: string, content: string): Promise<boolean> {
  await removeStaleTemps(path.dirname(file), (n) => n === path.basename(file));
  const current = await readFile(file, 'utf8').catch(() => null);
  if (current === content) return false;
  await writeFileAtomic(file, content);
  return true;
}

/**
 * `systemctl enable` links live in *.wants/ folders; once a unit file is gone it can no longer be
 * disabled, so its links are removed here. Any link to one of our names that is not rendered goes.
 */
async function removeStaleLinks(unitDir: string, keep: string[]): Promise<number> {
  let removed = 0;
  for (const dir of (await list(unitDir)).filter((n) => LINK_DIR.test(n))) {
    const full = path.join(unitDir, dir);
    const stale = (await list(full)).filter((n) => UNIT_NAME.test(n) && !keep.includes(n));
    for (const name of stale) {
      if ((await kind(path.join(full, name))) !== 'link') continue;
      await unlink(path.join(full, name));
      removed++;
    }
    if (stale.length > 0) fsyncDir(full);
  }
  return removed;
}

/**
 * Make the unit dir hold exactly the rendered set (plus the operator's override.conf files): each
 * file by temp + fsync + rename + fsync of its folder; ours that the set lacks are removed.
 */
export async function writeUnits(unitDir: string, tmpfilesPath: string, rendered: RenderedUnits): Promise<{ removedUnits: string[]; changed: boolean }> {
  rendered.files.forEach((f) => assertOwnedPath(f.relPath));
  await mkdir(unitDir, { recursive: true });
  await removeStaleTemps(unitDir, (n) => UNIT_NAME.test(n));
  for (const dir of (await list(unitDir)).filter(isUnitDir)) {
    if ((await kind(path.join(unitDir, dir))) === 'dir') await removeStaleTemps(path.join(unitDir, dir), isOurDropin);
  }
  const diff = diffUnits(rendered, await readInstalledUnits(unitDir));
  const content = new Map(rendered.files.map((f) => [f.relPath, f.content]));
  const before = new Set(await list(unitDir));
  let unitDirChanged = false;
  for (const rel of [...diff.added, ...diff.changed]) {
    const top = rel.split('/')[0];
    if (rel.includes('/') && !before.has(top)) unitDirChanged = true;
    await writeFileAtomic(path.join(unitDir, rel), content.get(rel) ?? '');
  }
  const emptied = new Set<string>();
  for (const rel of diff.removed) {
    await rm(path.join(unitDir, rel), { force: true });
    if (rel.includes('/')) emptied.add(rel.split('/')[0]);
    else unitDirChanged = true;
  }
  for (const dir of emptied) {
    const full = path.join(unitDir, dir);
    if ((await list(full)).length > 0) {
      fsyncDir(full);
      continue;
    }
    await rmdir(full);
    unitDirChanged = true;
  }
  // A new or removed entry of the unit dir (file or drop-in folder) must survive a power cut too.
  if (unitDirChanged) fsyncDir(unitDir);
  const links = await removeStaleLinks(unitDir, rendered.units);
  const tmpfilesChanged = await writeIfChanged(tmpfilesPath, rendered.tmpfiles);
  return { removedUnits: diff.removedUnits, changed: diff.drift || links > 0 || tmpfilesChanged };
}
