/**
 * Finds modules named like the release's own in folders the service user can write (for verify).
 * Never imports or runs what it finds: it only reports planted code.
 */

import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Layout } from '../layout.js';
import { VENV_DIR } from '../build/venv.js';

/**
 * A module of the release's name in a folder the service user can write would run instead of the
 * release wherever that folder comes first on sys.path. The units keep the working directory off
 * sys.path (python -P, PYTHONSAFEPATH), so such a file is never imported; it is still planted code,
 * and `verify` reports it.
 */

/** The release's top-level modules: folders and .py files at its root (dot entries and packaging aside). */
async function releaseModules(releaseDir: string): Promise<string[]> {
  const entries = await readdir(releaseDir, { withFileTypes: true });
  return entries
    .filter((e) => !e.name.startsWith('.') && !['packaging', 'requirements', 'wheels', 'tests', 'docs'].includes(e.name))
    .filter((e) => e.isDirectory() || (e.isFile() && e.name.endsWith('.py')))
    .map((e) => e.name.replace(/\.py$/, ''))
    .filter((name) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name));
}

async function writableByOthers(dir: string): Promise<boolean> {
  const st = await lstat(dir).catch(() => null);
  return st !== null && st.isDirectory() && (st.uid !== 0 || (st.mode & 0o022) !== 0);
}

/** Folders a unit's python could import from that the service user may write. */
async function writableImportFolders(layout: Layout, releaseDir: string): Promise<string[]> {
  const lib = path.join(releaseDir, VENV_DIR, 'lib');
  const versions = (await readdir(lib).catch(() => [])).filter((n) => n.startsWith('python'));
  // The state folder is the units' working directory and the app's to write, whoever owns it here.
  const out = [layout.stateDir];
  for (const dir of versions.map((v) => path.join(lib, v, 'site-packages'))) if (await writableByOthers(dir)) out.push(dir);
  return out;
}

/** One line per planted module: `<path> has the name of the release's module <name> ...`. */
export async function shadowingModules(layout: Layout, releaseDir: string): Promise<string[]> {
  const modules = await releaseModules(releaseDir);
  const problems: string[] = [];
  for (const folder of await writableImportFolders(layout, releaseDir)) {
    const names = await readdir(folder).catch(() => [] as string[]);
    for (const name of names) {
      const module = modules.find((m) => name === m || (name.startsWith(`${m}.`) && /\.(py|pyc|so|pth)$/.test(name)));
      if (!module) continue;
      const where = path.relative(layout.root, path.join(folder, name));
      problems.push(`/${where} shadows the release's module ${module} from a folder the service user can write (the units never import from it: python -P)`);
    }
  }
  return problems;
}
