/**
 * Incremental venv: a release whose requirement set differs from every complete release's starts
 * from a hard-link clone of the nearest one; the distributions the new set does not pin at the
 * same version are removed from the clone, and pip installs what is missing. Everything here only
 * ever unlinks or creates files in the clone: a hard-linked inode is shared with the source
 * release, so writing through it would change a release that may be running.
 */
import { lstat, readdir, readFile, realpath, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import * as py from '../adapters/python.js';

export interface InstalledDist {
  /** Normalized (PEP 503): lower case, runs of -_. as one -. */
  name: string;
  version: string;
  /** Absolute path of its *.dist-info folder. */
  distInfo: string;
}

export interface VenvDiffPlan {
  /** The release whose venv is cloned. */
  fromRelease: string;
  /** Distributions of the clone the new set pins at the same version: shared by hard links. */
  keep: InstalledDist[];
  /** Distributions of the source venv the new set does not pin at that version (names only). */
  remove: string[];
}

export interface DiffCandidate {
  releaseDir: string;
}

export const normalizeName = (name: string): string => name.toLowerCase().replace(/[-_.]+/g, '-');

// Only a bare `name==version` is a pin: extras or markers may change what it pulls in, so those go
// through pip like any unpinned requirement.
const PIN = /^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*===?\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)$/;

/** `name -> version` for every exact pin in the requirement texts. */
export function pinnedVersions(texts: string[]): Map<string, string> {
  const pins = new Map<string, string>();
  for (const text of texts) {
    for (const line of py.requirementLines(text)) {
      const m = PIN.exec(line);
      if (m) pins.set(normalizeName(m[1]!), m[2]!);
    }
  }
  return pins;
}

export async function sitePackagesOf(venvDir: string): Promise<string | null> {
  const lib = path.join(venvDir, 'lib');
  const versions = (await readdir(lib).catch(() => [] as string[])).filter((n) => n.startsWith('python'));
  for (const v of versions) {
    const dir = path.join(lib, v, 'site-packages');
    if (await lstat(dir).then((s) => s.isDirectory(), () => false)) return dir;
  }
  return null;
}

/** Name and Version from a dist-info's METADATA header (the folder name is escaped differently by old tools). */
export async function installedDists(site: string): Promise<InstalledDist[]> {
  const entries = (await readdir(site)).filter((n) => n.endsWith('.dist-info'));
  const dists = await Promise.all(
    entries.map(async (entry) => {
      const distInfo = path.join(site, entry);
      const text = await readFile(path.join(distInfo, 'METADATA'), 'utf8').catch(() => '');
      const header = text.split(/\r?\n\r?\n/, 1)[0] ?? '';
      const name = /^Name:\s*(.+?)\s*$/m.exec(header)?.[1];
      const version = /^Version:\s*(.+?)\s*$/m.exec(header)?.[1];
      return name && version ? { name: normalizeName(name), version, distInfo } : null;
    }),
  );
  return dists.filter((d): d is InstalledDist => d !== null);
}

/** A venv made by the same interpreter: pyvenv.cfg names its folder and version. */
async function sameInterpreter(venvDir: string, python: string, pythonVersion: string): Promise<boolean> {
  const cfg = await readFile(path.join(venvDir, 'pyvenv.cfg'), 'utf8').catch(() => null);
  if (cfg === null) return false;
  const value = (key: string) => new RegExp(`^${key}\\s*=\\s*(.*?)\\s*$`, 'm').exec(cfg)?.[1];
  return value('home') === path.dirname(path.resolve(python)) && value('version') === pythonVersion;
}

/**
 * The nearest complete release: the one whose venv already has the most distributions at the
 * versions the new set pins. Null when none shares the interpreter or a single pinned version
 * (a fresh build is then as fast). Earlier candidates win ties.
 */
export async function planVenvDiff(
  requirementTexts: string[],
  candidates: DiffCandidate[],
  interpreter: { python: string; version: string },
  venvDirName: string,
): Promise<VenvDiffPlan | null> {
  const pins = pinnedVersions(requirementTexts);
  if (pins.size === 0) return null;
  let best: VenvDiffPlan | null = null;
  for (const c of candidates) {
    const venv = path.join(path.resolve(c.releaseDir), venvDirName);
    if (!(await sameInterpreter(venv, interpreter.python, interpreter.version))) continue;
    const site = await sitePackagesOf(venv);
    if (!site) continue;
    const dists = await installedDists(site).catch(() => []);
    const keep = dists.filter((d) => pins.get(d.name) === d.version);
    if (keep.length > 0 && keep.length > (best?.keep.length ?? 0)) {
      best = { fromRelease: path.resolve(c.releaseDir), keep, remove: dists.filter((d) => !keep.includes(d)).map((d) => d.name) };
    }
  }
  return best;
}

/** RECORD rows: `path,hash,size`, the path quoted when it holds a comma. */
function recordPaths(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const quoted = /^"((?:[^"]|"")*)",/.exec(line);
    out.push(quoted ? quoted[1]!.replace(/""/g, '"') : line.slice(0, line.indexOf(',') < 0 ? undefined : line.indexOf(',')));
  }
  return out;
}

/**
 * Remove one distribution from a cloned venv by unlinking the files its RECORD lists (and their
 * .pyc). A RECORD path that leaves the venv, directly or through a symlinked folder, is refused:
 * the RECORD was written while release code could run, and root must not unlink outside the clone.
 */
async function uninstallFromClone(venvDir: string, site: string, dist: InstalledDist): Promise<void> {
  const realVenv = await realpath(venvDir);
  const record = await readFile(path.join(dist.distInfo, 'RECORD'), 'utf8');
  const files = new Set<string>();
  for (const rel of recordPaths(record)) {
    const file = path.resolve(site, rel);
    if (!file.startsWith(venvDir + path.sep)) throw new Error(`RECORD of ${dist.name} names ${rel}, outside the venv`);
    files.add(file);
    if (file.endsWith('.py')) {
      const cache = path.join(path.dirname(file), '__pycache__');
      const stem = path.basename(file, '.py') + '.';
      for (const pyc of await readdir(cache).catch(() => [] as string[])) {
        if (pyc.startsWith(stem) && pyc.endsWith('.pyc') && pyc.slice(stem.length).split('.').length === 2) files.add(path.join(cache, pyc));
      }
    }
  }
  const parents = new Set<string>();
  for (const file of files) {
    const dir = await realpath(path.dirname(file)).catch(() => null);
    if (dir === null) continue; // already gone with its folder
    if (dir !== realVenv && !dir.startsWith(realVenv + path.sep)) throw new Error(`RECORD of ${dist.name} reaches ${dir}, outside the venv`);
    const target = path.join(dir, path.basename(file));
    const st = await lstat(target).catch(() => null);
    if (!st || st.isDirectory()) continue;
    await unlink(target); // a new name for the inode goes away; the source release's name stays
    parents.add(dir);
  }
  await rm(dist.distInfo, { recursive: true, force: true });
  // Folders the distribution leaves empty go too (deepest first), never the venv's own layout.
  const keepDirs = new Set([realVenv, await realpath(site), path.join(realVenv, 'bin')]);
  for (const dir of [...parents].sort((a, b) => b.length - a.length)) {
    for (let d = dir; !keepDirs.has(d) && d.startsWith(realVenv + path.sep); d = path.dirname(d)) {
      const ok = await rmdir(d).then(() => true, () => false);
      if (!ok) break;
    }
  }
}

export interface AppliedDiff {
  removed: string[];
}

/**
 * Turn a clone into the new set: unlink every distribution the plan does not keep, then let pip
 * install what is missing (offline from the release's wheels when it ships them). Throws on any
 * failure; the caller removes the clone and builds afresh.
 */
export async function applyVenvDiff(plan: VenvDiffPlan, venvDir: string, install: () => Promise<void>): Promise<AppliedDiff> {
  const site = await sitePackagesOf(venvDir);
  if (!site) throw new Error('the cloned venv has no site-packages');
  const kept = new Set(plan.keep.map((d) => `${d.name}==${d.version}`));
  const removed: string[] = [];
  for (const dist of await installedDists(site)) {
    if (kept.has(`${dist.name}==${dist.version}`)) continue;
    await uninstallFromClone(venvDir, site, dist);
    removed.push(`${dist.name}==${dist.version}`);
  }
  await install();
  return { removed };
}
