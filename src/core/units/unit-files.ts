/**
 * The installed unit files: read, compare, stage every change, then rename into place.
 * Never writes outside our smolotchi-* names, and never touches an operator's override.conf.
 */

import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError, NothingChangedError } from '../errors.js';
import { commitTemp, fsyncDir, writeTemp } from '../fsutil.js';
import { parseUnit } from './unit-policy.js';
import { byCodeUnits } from '../version.js';

export interface RenderedFile {
  /** Relative to the unit dir: 'smolotchi-web.service', 'smolotchi-web.service.d/10-hardening.conf'. */
  relPath: string;
  content: string;
}

export interface RenderedUnits {
  source: 'release' | 'bundled';
  files: RenderedFile[];
  /** Every unit installed, the tool's own release-check included. */
  units: string[];
  /** Units to (re)start, in dependency order. */
  startOrder: string[];
  tmpfiles: string;
  /** Per unit, the sandboxing its release turned off (empty units left out). */
  loosened: Record<string, string[]>;
  /** sha256 over every file's relPath and content. */
  templateHash: string;
}

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

export const byPath = (a: RenderedFile, b: RenderedFile): number => byCodeUnits(a.relPath, b.relPath);

const isUnitDir = (name: string) => name.endsWith('.d') && UNIT_NAME.test(name.slice(0, -2));
const isOurDropin = (name: string) => name.endsWith('.conf') && !name.startsWith('.') && name !== OPERATOR_DROPIN;
const unitOf = (relPath: string) => relPath.split('/')[0].replace(/\.d$/, '');

/** One unit's rendered files: its unit file first, then its drop-ins (`files` is sorted by path). */
export const unitFiles = (rendered: RenderedUnits, unit: string): RenderedFile[] => rendered.files.filter((f) => unitOf(f.relPath) === unit);

async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

type Kind = 'file' | 'dir' | 'link' | 'other' | null;

const kindOf = (info: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): Kind =>
  info.isFile() ? 'file' : info.isDirectory() ? 'dir' : info.isSymbolicLink() ? 'link' : 'other';

async function kind(file: string): Promise<Kind> {
  try {
    return kindOf(await lstat(file));
  } catch {
    return null;
  }
}

// Synchronous twins for reading the installed units: a few dozen small files, read on every
// mutating command (twice in a rollback); a thread-pool round trip each cost more than the reads.
function listSync(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

function kindSync(file: string): Kind {
  try {
    return kindOf(lstatSync(file));
  } catch {
    return null;
  }
}

/** Our files in the unit dir: smolotchi-* units and the *.conf in their .d folders (symlinks, such as masks, are not ours). */
export async function readInstalledUnits(unitDir: string): Promise<RenderedFile[]> {
  const files: RenderedFile[] = [];
  for (const name of listSync(unitDir)) {
    // Only our names are looked at: the host's own units (many, on a device) are never stat'ed.
    const unitFile = UNIT_NAME.test(name);
    if (!unitFile && !isUnitDir(name)) continue;
    const full = path.join(unitDir, name);
    const what = kindSync(full);
    if (what === 'file' && unitFile) files.push({ relPath: name, content: readFileSync(full, 'utf8') });
    if (what !== 'dir' || unitFile) continue;
    for (const conf of listSync(full)) {
      const file = path.join(full, conf);
      if (isOurDropin(conf) && kindSync(file) === 'file') files.push({ relPath: `${name}/${conf}`, content: readFileSync(file, 'utf8') });
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

/** A temp file written beside its final path, to be renamed over it. */
interface StagedFile {
  tmp: string;
  file: string;
}

/**
 * Phase one of writeUnits: every new or changed file (and the tmpfiles config) as a fsynced temp
 * beside its final path. A full disk fails here, and then nothing visible has changed.
 */
async function stageFiles(unitDir: string, tmpfilesPath: string, rendered: RenderedUnits, rels: string[]): Promise<StagedFile[]> {
  const content = new Map(rendered.files.map((f) => [f.relPath, f.content]));
  const before = new Set(await list(unitDir));
  const staged: StagedFile[] = [];
  const newDirs = new Set<string>();
  try {
    for (const rel of rels) {
      const top = rel.split('/')[0];
      if (rel.includes('/') && !before.has(top)) newDirs.add(top);
      const file = path.join(unitDir, rel);
      staged.push({ tmp: await writeTemp(file, content.get(rel) ?? ''), file });
    }
    await removeStaleTemps(path.dirname(tmpfilesPath), (n) => n === path.basename(tmpfilesPath));
    if ((await readFile(tmpfilesPath, 'utf8').catch(() => null)) !== rendered.tmpfiles) {
      staged.push({ tmp: await writeTemp(tmpfilesPath, rendered.tmpfiles), file: tmpfilesPath });
    }
    return staged;
  } catch (err) {
    await Promise.all(staged.map((f) => rm(f.tmp, { force: true })));
    for (const dir of newDirs) await rmdir(path.join(unitDir, dir)).catch(() => undefined);
    throw new NothingChangedError(`could not write the unit files (${(err as Error).message}); none was changed`, err);
  }
}

/**
 * Make the unit dir hold exactly the rendered set (plus the operator's override.conf files). All
 * new content is first staged in fsynced temp files (a full disk fails there: NothingChangedError),
 * then `beforeCommit` runs (stopping units the set drops), then every temp is renamed into place
 * and the folders fsynced; ours that the set lacks are removed.
 */
export async function writeUnits(
  unitDir: string,
  tmpfilesPath: string,
  rendered: RenderedUnits,
  hooks: { beforeCommit?: () => Promise<void> } = {},
): Promise<{ removedUnits: string[]; changed: boolean }> {
  rendered.files.forEach((f) => assertOwnedPath(f.relPath));
  await mkdir(unitDir, { recursive: true });
  await removeStaleTemps(unitDir, (n) => UNIT_NAME.test(n));
  for (const dir of (await list(unitDir)).filter(isUnitDir)) {
    if ((await kind(path.join(unitDir, dir))) === 'dir') await removeStaleTemps(path.join(unitDir, dir), isOurDropin);
  }
  const diff = diffUnits(rendered, await readInstalledUnits(unitDir));
  const staged = await stageFiles(unitDir, tmpfilesPath, rendered, [...diff.added, ...diff.changed]);
  try {
    await hooks.beforeCommit?.();
  } catch (err) {
    await Promise.all(staged.map((f) => rm(f.tmp, { force: true })));
    throw err;
  }
  const touched = new Set<string>();
  for (const { tmp, file } of staged) {
    await commitTemp(tmp, file);
    touched.add(path.dirname(file));
    // A new drop-in folder is itself a new entry of the unit dir.
    if (path.dirname(path.dirname(file)) === unitDir) touched.add(unitDir);
  }
  let unitDirChanged = false;
  const emptied = new Set<string>();
  for (const rel of diff.removed) {
    await rm(path.join(unitDir, rel), { force: true });
    if (rel.includes('/')) emptied.add(rel.split('/')[0]);
    else unitDirChanged = true;
  }
  for (const dir of emptied) {
    const full = path.join(unitDir, dir);
    if ((await list(full)).length > 0) {
      touched.add(full);
      continue;
    }
    await rmdir(full);
    unitDirChanged = true;
  }
  // Every new, replaced or removed entry (file or drop-in folder) must survive a power cut too.
  if (unitDirChanged) touched.add(unitDir);
  for (const dir of touched) fsyncDir(dir);
  const links = await removeStaleLinks(unitDir, rendered.units);
  const tmpfilesChanged = staged.some((f) => f.file === tmpfilesPath);
  return { removedUnits: diff.removedUnits, changed: diff.drift || links > 0 || tmpfilesChanged };
}

/** A unit's [Install] directives over its file and drop-ins, normalised: what `enable` turns into links. */
function installSections(files: RenderedFile[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of [...files].sort(byPath)) {
    const lines = parseUnit(f.content).filter((d) => d.section === 'Install').map((d) => `${d.key}=${d.value}`);
    const unit = unitOf(f.relPath);
    out.set(unit, [out.get(unit) ?? '', ...lines].join('\n'));
  }
  return out;
}

/** Units installed before and rendered again whose [Install] sections differ: they must be disabled first. */
export function installChanged(rendered: RenderedUnits, installed: RenderedFile[]): string[] {
  const before = installSections(installed);
  const after = installSections(rendered.files);
  return [...after.keys()].filter((unit) => before.has(unit) && before.get(unit) !== after.get(unit)).sort();
}
