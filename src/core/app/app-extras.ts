/**
 * A release's pyproject extras as requirement strings for pip (read bounded, without links).
 * Never pip-installs the release itself: its build backend would be release code run by pip.
 */

import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError, UsageError } from '../errors.js';

/**
 * The extras of a release's pyproject.toml `[project.optional-dependencies]`, as requirement
 * strings for pip. The release itself is never pip-installed (it runs from PYTHONPATH and its
 * build backend would be release code run by the installer), so `.[web]` is not an option: the
 * extras' requirements are read here and handed to pip one by one.
 */

// A pyproject.toml is a few KiB; a bigger one is not read (release files are untrusted input).
const MAX_PYPROJECT_BYTES = 256 * 1024;
// PEP 508 starts with a project name: a leading '-' would reach pip as an option.
const REQUIREMENT = /^[A-Za-z0-9][^\n\r\0]{0,511}$/;
const EXTRA_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The extras installed when SMOLOTCHI_RELEASE_EXTRAS is not set: the app's deploy page's choice. */
export function defaultExtras(display: boolean): string[] {
  return display ? ['web', 'core', 'display'] : ['web', 'core'];
}

/** PEP 685: extra names compare normalized. */
const normalize = (name: string) => name.toLowerCase().replace(/[-_.]+/g, '-');

export interface PyprojectExtras {
  project: string | null;
  extras: Map<string, string[]>;
}

/** Read pyproject.toml of a release without following a symlink; null when the release has none. */
async function readPyproject(releaseDir: string): Promise<string | null> {
  const file = path.join(releaseDir, 'pyproject.toml');
  let handle;
  try {
    // A link could make root read (and report) a file outside the release.
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new ReleaseError('pyproject.toml of the release is a symlink; refusing to read it');
    throw new ReleaseError(`cannot read pyproject.toml of the release: ${(err as Error).message}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new ReleaseError('pyproject.toml of the release is not a regular file');
    if (st.size > MAX_PYPROJECT_BYTES) throw new ReleaseError(`pyproject.toml of the release is larger than ${MAX_PYPROJECT_BYTES} bytes`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

export async function readPyprojectExtras(releaseDir: string): Promise<PyprojectExtras> {
  const text = await readPyproject(releaseDir);
  if (text === null) return { project: null, extras: new Map() };
  // Loaded on first use: only a venv build of a release with a pyproject.toml reads TOML.
  const { parse } = await import('smol-toml');
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new ReleaseError(`pyproject.toml of the release is not valid TOML: ${(err as Error).message.split('\n')[0]}`);
  }
  const project = (doc.project ?? {}) as Record<string, unknown>;
  const table = project['optional-dependencies'] ?? {};
  if (typeof table !== 'object' || table === null || Array.isArray(table)) {
    throw new ReleaseError('pyproject.toml: [project.optional-dependencies] must be a table');
  }
  const extras = new Map<string, string[]>();
  for (const [name, reqs] of Object.entries(table)) {
    if (!Array.isArray(reqs) || !reqs.every((r) => typeof r === 'string' && REQUIREMENT.test(r.trim()))) {
      throw new ReleaseError(`pyproject.toml: extra ${JSON.stringify(name)} must be a list of requirement strings`);
    }
    extras.set(normalize(name), reqs.map((r: string) => r.trim()));
  }
  return { project: typeof project.name === 'string' ? normalize(project.name) : null, extras };
}

/**
 * The requirement strings of the chosen extras. `chosen` null means the defaults, taken only where
 * the release has them; a name the operator chose that the release lacks is a usage error (exit 2)
 * listing the ones it has. `project[other]` inside an extra (a self-reference) is expanded.
 */
export async function extraRequirements(releaseDir: string, chosen: string[] | null, display: boolean): Promise<{ extras: string[]; requirements: string[] }> {
  const { project, extras } = await readPyprojectExtras(releaseDir);
  const names = chosen ?? defaultExtras(display).filter((n) => extras.has(normalize(n)));
  for (const name of names) {
    if (!EXTRA_NAME.test(name)) throw new UsageError(`SMOLOTCHI_RELEASE_EXTRAS: invalid extra name ${JSON.stringify(name)}`);
    if (extras.has(normalize(name))) continue;
    const available = [...extras.keys()].sort();
    throw new UsageError(
      `extra ${JSON.stringify(name)} is not in the release's pyproject.toml [project.optional-dependencies]`,
      available.length ? `available extras: ${available.join(', ')}` : 'this release declares no extras; for a requirement file use SMOLOTCHI_RELEASE_REQUIREMENTS',
    );
  }
  const requirements: string[] = [];
  const seen = new Set<string>();
  const expand = (name: string) => {
    if (seen.has(normalize(name))) return;
    seen.add(normalize(name));
    for (const req of extras.get(normalize(name)) ?? []) {
      const self = /^([A-Za-z0-9._-]+)\s*\[([^\]]*)\]\s*$/.exec(req);
      if (self && project !== null && normalize(self[1]!) === project) self[2]!.split(',').map((s) => s.trim()).filter(Boolean).forEach(expand);
      else if (!requirements.includes(req)) requirements.push(req);
    }
  };
  names.forEach(expand);
  return { extras: names, requirements };
}
