import { createHash } from 'node:crypto';
import { link, lstat, mkdir, readdir, readFile, readlink, realpath, rm, stat, symlink, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as py from '../adapters/python.js';
import { ReleaseError } from './errors.js';
import { killPoint } from './killpoint.js';
import type { Logger } from './log.js';
import { applyVenvDiff, planVenvDiff } from './venv-diff.js';

export interface VenvSpec {
  releaseDir: string;
  python: string;
  /** Relative to releaseDir, installed in addition to the default file; each must exist. */
  requirementFiles: string[];
  /** Each maps to requirements/<extra>.txt, which must exist. */
  extras: string[];
}

export interface ReuseCandidate {
  releaseDir: string;
  requirementHash: string;
}

export interface BuiltVenv {
  requirementHash: string;
  pythonVersion: string;
  /** The release whose venv was cloned (identical or incremental), null for a fresh build. */
  reusedFrom: string | null;
  /** clone: identical set, no pip; incremental: clone + pip for the difference; fresh: venv + pip. */
  mode: 'clone' | 'incremental' | 'fresh';
  durationMs: number;
}

export const VENV_DIR = '.venv';
const EXTRA_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

async function exists(file: string): Promise<boolean> {
  return stat(file).then(() => true, () => false);
}

/** The files pip reads, relative to the release: its default file (if any), named files, extras. */
export async function resolveRequirementFiles(spec: VenvSpec): Promise<string[]> {
  const root = path.resolve(spec.releaseDir);
  const files: string[] = [];
  for (const fallback of ['requirements/base.txt', 'requirements.txt']) {
    if (await exists(path.join(root, fallback))) {
      files.push(fallback);
      break;
    }
  }
  const named = [...spec.requirementFiles];
  for (const extra of spec.extras) {
    if (!EXTRA_NAME.test(extra)) throw new ReleaseError(`invalid extra name ${JSON.stringify(extra)}`);
    named.push(`requirements/${extra}.txt`);
  }
  for (const name of named) {
    const rel = path.relative(root, path.resolve(root, name));
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new ReleaseError(`requirement file ${name} is outside the release`);
    if (!(await exists(path.join(root, rel)))) throw new ReleaseError(`requirement file ${rel} is named but missing from the release`);
    if (!files.includes(rel)) files.push(rel);
  }
  return files;
}

/** Nested `-r`/`-c` files change what pip installs, so they belong in the hash too. */
function nestedFiles(text: string, fromFile: string): string[] {
  const out: string[] = [];
  for (const line of py.requirementLines(text)) {
    const m = /^(?:-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+|(?<=^-[rc]))(\S+)$/.exec(line);
    if (m && !/^[a-z+]+:\/\//i.test(m[1]!)) out.push(path.resolve(path.dirname(fromFile), m[1]!));
  }
  return out;
}

/** Each requirement file pip will read, nested `-r`/`-c` files included, in the order pip meets them. */
async function requirementTexts(root: string, files: string[]): Promise<Array<{ file: string; content: string }>> {
  const queue = files.map((f) => path.join(root, f));
  const seen = new Set<string>();
  const out: Array<{ file: string; content: string }> = [];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const content = await readFile(file, 'utf8').catch(() => null);
    if (content === null) continue; // pip reports the missing file itself
    out.push({ file, content });
    queue.push(...nestedFiles(content, file));
  }
  return out;
}

async function requirementHashFor(spec: VenvSpec, version: string, files: string[]): Promise<string> {
  const root = path.resolve(spec.releaseDir);
  const hash = createHash('sha256');
  // The interpreter path counts too: a venv links to its base interpreter.
  hash.update(`python ${spec.python} ${version}\n`);
  for (const { file, content } of await requirementTexts(root, files)) {
    hash.update(`file ${path.relative(root, file)} ${Buffer.byteLength(content)}\n${content}\n`);
  }
  hash.update(`extras ${spec.extras.join(',')}\n`);
  for (const [name, size] of await wheelListing(path.join(root, 'wheels'))) hash.update(`wheel ${name} ${size}\n`);
  return hash.digest('hex');
}

async function wheelListing(dir: string): Promise<Array<[string, number]>> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const files = entries.filter((e) => e.isFile()).map((e) => e.name).sort();
  return Promise.all(files.map(async (name) => [name, (await stat(path.join(dir, name))).size] as [string, number]));
}

/** Same hash, same venv contents: the key under which a release's venv can be shared. */
export async function requirementHash(spec: VenvSpec): Promise<string> {
  const version = await py.pythonVersion(spec.python);
  return requirementHashFor(spec, version, await resolveRequirementFiles(spec));
}

/**
 * Clone a venv by hard links. Text files in bin/ and pyvenv.cfg that name the old venv are written
 * anew (never through the shared inode); symlinks are recreated, retargeted if they pointed inside.
 * A site-packages entry that points at the old release's own tree (a local-path install) refuses.
 */
async function cloneTree(src: string, dst: string, from: { venv: string; release: string }, to: string, rel = ''): Promise<void> {
  await mkdir(dst, { mode: (await stat(src)).mode & 0o7777 });
  const entries = await readdir(src, { withFileTypes: true });
  await Promise.all(
    entries.map(async (e) => {
      const [s, d, r] = [path.join(src, e.name), path.join(dst, e.name), rel ? `${rel}/${e.name}` : e.name];
      if (e.isDirectory()) return cloneTree(s, d, from, to, r);
      if (e.isSymbolicLink()) {
        const target = await readlink(s);
        const inside = target === from.venv || target.startsWith(from.venv + '/');
        return symlink(inside ? to + target.slice(from.venv.length) : target, d);
      }
      if (!e.isFile()) throw new Error(`unexpected file type at ${r}`);
      if (e.name === 'direct_url.json' || e.name.endsWith('.pth') || e.name.endsWith('.egg-link')) {
        if ((await readFile(s, 'utf8')).includes(from.release)) throw new Error(`${r} refers to ${from.release}`);
      }
      if (r === 'pyvenv.cfg' || r.startsWith('bin/')) {
        const buf = await readFile(s);
        if (!buf.includes(0) && buf.includes(from.venv)) {
          const mode = (await stat(s)).mode & 0o7777;
          await writeFile(d, buf.toString('utf8').split(from.venv).join(to), { flag: 'wx', mode });
          return chmod(d, mode); // writeFile's mode is filtered by the umask
        }
      }
      return link(s, d);
    }),
  );
}

async function cloneVenv(fromRelease: string, venvDir: string): Promise<void> {
  const from = { release: fromRelease, venv: path.join(fromRelease, VENV_DIR) };
  await cloneTree(from.venv, venvDir, from, venvDir);
  // A source venv built under another path (another root) keeps pointing there: not a clone.
  const activate = await readFile(path.join(venvDir, 'bin', 'activate'), 'utf8').catch(() => null);
  if (activate !== null && !activate.includes(venvDir)) throw new Error(`${from.venv} was built at another path`);
  const prefix = await py.venvPrefix(py.venvPython(venvDir));
  if ((await realpath(prefix)) !== (await realpath(venvDir))) throw new Error(`cloned venv reports prefix ${prefix}`);
}

/** First candidate with the same hash and a venv on disk; the venv is cloned or the slot stays empty. */
async function tryReuse(venvDir: string, hash: string, candidates: ReuseCandidate[], log: Logger): Promise<string | null> {
  const self = path.dirname(venvDir);
  for (const c of candidates) {
    const from = path.resolve(c.releaseDir);
    if (c.requirementHash !== hash || from === self) continue;
    if (!(await exists(path.join(from, VENV_DIR, 'pyvenv.cfg')))) continue;
    try {
      await cloneVenv(from, venvDir);
      return from;
    } catch (err) {
      log.warn(`could not reuse the venv of ${from} (${err instanceof Error ? err.message : String(err)}); building it`);
      await rm(venvDir, { recursive: true, force: true });
      return null;
    }
  }
  return null;
}

async function sitePackages(venvDir: string): Promise<string[]> {
  const lib = path.join(venvDir, 'lib');
  const versions = (await readdir(lib).catch(() => [])).filter((n) => n.startsWith('python'));
  const dirs = versions.map((v) => path.join(lib, v, 'site-packages'));
  const present = await Promise.all(dirs.map(exists));
  return dirs.filter((_, i) => present[i]);
}

/** The release's own Python: its top-level folders and .py files, without dot entries (.venv, .git). */
async function releaseCode(releaseDir: string): Promise<string[]> {
  const entries = await readdir(releaseDir, { withFileTypes: true });
  return entries
    .filter((e) => !e.name.startsWith('.') && (e.isDirectory() || (e.isFile() && e.name.endsWith('.py'))))
    .map((e) => path.join(releaseDir, e.name));
}

/**
 * No identical venv: clone the nearest one and let pip change only what differs. Null (and an
 * empty slot) when no release is near enough or the clone cannot be brought to the new set.
 */
async function tryIncremental(
  venvDir: string,
  texts: string[],
  interpreter: { python: string; version: string },
  candidates: ReuseCandidate[],
  install: () => Promise<void>,
  log: Logger,
): Promise<{ from: string; removed: string[] } | null> {
  const self = path.dirname(venvDir);
  const others = candidates.filter((c) => path.resolve(c.releaseDir) !== self);
  const plan = await planVenvDiff(texts, others, interpreter, VENV_DIR);
  if (!plan) return null;
  try {
    await cloneVenv(plan.fromRelease, venvDir);
    killPoint('venv-cloned');
    const { removed } = await applyVenvDiff(plan, venvDir, install);
    return { from: plan.fromRelease, removed };
  } catch (err) {
    log.warn(`could not update a clone of ${plan.fromRelease}'s venv (${err instanceof Error ? err.message : String(err)}); building it`);
    await rm(venvDir, { recursive: true, force: true });
    return null;
  }
}

/**
 * Build `<release>/.venv` at its final path (a venv records its own location): a clone of an
 * identical venv, else a clone of the nearest one with pip applying the difference, else a fresh
 * build. Then byte-compile and import the app. Throws on any failure; the caller removes the release.
 */
export async function buildVenv(spec: VenvSpec, opts: { log: Logger; reuseCandidates: ReuseCandidate[] }): Promise<BuiltVenv> {
  const started = performance.now();
  const since = () => Math.round(performance.now() - started);
  const releaseDir = path.resolve(spec.releaseDir);
  const venvDir = path.join(releaseDir, VENV_DIR);
  const version = await py.pythonVersion(spec.python);
  const files = await resolveRequirementFiles(spec);
  const hash = await requirementHashFor(spec, version, files);
  // A venv shipped in the archive or left half-built is never trusted.
  if (await lstat(venvDir).then(() => true, () => false)) await rm(venvDir, { recursive: true, force: true });

  const wheels = path.join(releaseDir, 'wheels');
  const findLinks = (await exists(wheels)) ? wheels : null;
  const reqs = files.map((f) => path.join(releaseDir, f));
  const install = () => py.pipInstall({ hostPython: spec.python, venvDir, requirementFiles: reqs, findLinks, cwd: releaseDir });

  let reusedFrom = await tryReuse(venvDir, hash, opts.reuseCandidates, opts.log);
  let mode: BuiltVenv['mode'] = 'clone';
  if (reusedFrom) {
    killPoint('venv-cloned');
    opts.log.info(`venv: reused ${reusedFrom} by hard links (${since()} ms)`);
  } else {
    const texts = (await requirementTexts(releaseDir, files)).map((t) => t.content);
    const interpreter = { python: spec.python, version };
    const diff = await tryIncremental(venvDir, texts, interpreter, opts.reuseCandidates, install, opts.log);
    if (diff) {
      reusedFrom = diff.from;
      mode = 'incremental';
      killPoint('venv-pip-done');
      const removed = diff.removed.length ? `, removed ${diff.removed.join(' ')}` : '';
      opts.log.info(`venv: cloned ${diff.from} by hard links, pip installed the difference${removed} (${since()} ms)`);
    } else {
      mode = 'fresh';
      await py.createVenv(spec.python, venvDir);
      killPoint('venv-created');
      await install();
      killPoint('venv-pip-done');
      opts.log.info(`venv: built with ${files.length ? files.join(', ') : 'no requirements'}${findLinks ? ' from wheels/' : ''} (${since()} ms)`);
    }
  }

  const python = py.venvPython(venvDir);
  // A clone's .pyc files are its source's, and pip compiles what it installs into a clone: walking
  // them again costs more than the clone itself. After a fresh build, third-party files that do
  // not compile (templates named .py) are skipped, as pip itself does; the app's own code must compile.
  if (mode === 'fresh') {
    await py.byteCompile(python, await sitePackages(venvDir)).catch((err: unknown) => {
      opts.log.warn(`some installed files did not byte-compile: ${err instanceof Error ? err.message : String(err)}`);
    });
  }
  await py.compileAndImport(python, releaseDir, await releaseCode(releaseDir));
  killPoint('venv-smoke-done');
  const durationMs = since();
  opts.log.debug(`venv: compiled and smoke-imported (${durationMs} ms in all)`);
  return { requirementHash: hash, pythonVersion: version, reusedFrom, mode, durationMs };
}
