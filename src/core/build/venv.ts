/**
 * Builds `<release>/.venv` at its final path, or clones an identical one by hard links.
 * Never trusts a venv shipped or half-built, nor writes through an inode shared with the source.
 */

import { createHash } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync, type Dirent } from 'node:fs';
import { lstat, readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as py from '../../adapters/python.js';
import { startWheelInstaller, type WheelInstaller } from '../../adapters/pip-wheels.js';
import type { ServiceIdentity } from '../../adapters/service-user.js';
import { grantFolder, grantFolderTree, grantPycacheFolders, reclaimFromService } from './build-ownership.js';
import { installedDists, planDiff, removeDist } from './venv-incremental.js';
import { extraRequirements } from '../app/app-extras.js';
import { PI_REQUIREMENTS, type Profile } from './device-profile.js';
import { isDiskFull, ReleaseError } from '../errors.js';
import { yieldToLoop } from '../fsutil.js';
import { killPoint } from '../killpoint.js';
import type { Logger } from '../log.js';
import type { Progress } from '../progress.js';

export interface VenvSpec {
  releaseDir: string;
  python: string;
  /** Relative to releaseDir, installed in addition to the default file; each must exist. */
  requirementFiles: string[];
  /** Extras of the release's pyproject.toml; null: the defaults it has (see app-extras.ts). */
  extras: string[] | null;
  /** Whether the display unit is enabled: the default extras then include `display`. */
  display?: boolean;
  /** `pi` adds requirements/pi_zero.txt when the release ships it. */
  profile?: Profile;
  /** Who runs pip, build backends, byte-compile and the smoke import (never root). */
  runAs: ServiceIdentity;
}

/** Everything pip installs for a spec: requirement files and the extras' requirement strings. */
export interface RequirementSet {
  files: string[];
  extras: string[];
  requirements: string[];
}

export interface ReuseCandidate {
  releaseDir: string;
  requirementHash: string;
  /** From the candidate's stamp: only a venv of the same Python is cloned for an incremental install. */
  pythonVersion?: string;
  /** From the candidate's stamp (root's): the interpreter identity its pythonVersion was asked of. */
  pythonIdentity?: string | null;
}

/** What pip changed in a clone of another release's venv (an incremental build). */
export interface IncrementalChanges {
  added: string[];
  changed: string[];
  removed: string[];
}

export interface BuiltVenv {
  requirementHash: string;
  pythonVersion: string;
  /** The host interpreter's identity when pythonVersion was known (see py.interpreterIdentity). */
  pythonIdentity: string | null;
  reusedFrom: string | null;
  /** Set when the clone came from a different requirement set and pip applied the difference. */
  incremental: IncrementalChanges | null;
  durationMs: number;
}

export const VENV_DIR = '.venv';

async function exists(file: string): Promise<boolean> {
  return stat(file).then(() => true, () => false);
}

/**
 * What pip installs, as the app's deploy flow does: requirements/base.txt (or requirements.txt),
 * requirements/pi_zero.txt on the `pi` profile, files named in the settings, and the requirements
 * of the chosen pyproject extras.
 */
export async function resolveRequirements(spec: VenvSpec): Promise<RequirementSet> {
  const root = path.resolve(spec.releaseDir);
  const files: string[] = [];
  for (const fallback of ['requirements/base.txt', 'requirements.txt']) {
    if (await exists(path.join(root, fallback))) {
      files.push(fallback);
      break;
    }
  }
  if (spec.profile === 'pi' && (await exists(path.join(root, PI_REQUIREMENTS)))) files.push(PI_REQUIREMENTS);
  for (const name of spec.requirementFiles) {
    const rel = path.relative(root, path.resolve(root, name));
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new ReleaseError(`requirement file ${name} is outside the release`);
    if (!(await exists(path.join(root, rel)))) throw new ReleaseError(`requirement file ${rel} is named but missing from the release`);
    if (!files.includes(rel)) files.push(rel);
  }
  const { extras, requirements } = await extraRequirements(root, spec.extras, spec.display ?? false);
  return { files, extras, requirements };
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

async function requirementHashFor(spec: VenvSpec, version: string, set: RequirementSet): Promise<string> {
  const root = path.resolve(spec.releaseDir);
  const hash = createHash('sha256');
  // The interpreter path counts too: a venv links to its base interpreter.
  hash.update(`python ${spec.python} ${version}\n`);
  const queue = set.files.map((f) => path.join(root, f));
  const seen = new Set<string>();
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const content = await readFile(file, 'utf8').catch(() => null);
    if (content === null) continue; // pip reports the missing file itself
    hash.update(`file ${path.relative(root, file)} ${Buffer.byteLength(content)}\n${content}\n`);
    queue.push(...nestedFiles(content, file));
  }
  hash.update(`extras ${set.extras.join(',')}\n`);
  for (const req of set.requirements) hash.update(`requirement ${req}\n`);
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
  const version = await py.pythonVersion(spec.python, spec.runAs);
  return requirementHashFor(spec, version, await resolveRequirements(spec));
}

/**
 * Clone a venv by hard links. Text files in bin/ and pyvenv.cfg that name the old venv are written
 * anew (never through the shared inode); symlinks are recreated, retargeted if they pointed inside.
 * A site-packages entry that points at the old release's own tree (a local-path install) refuses.
 *
 * Synchronous calls, one folder at a time: a venv is ~600 entries of one cheap syscall each
 * (~10-20 us), where a promise per entry through libuv's thread pool cost ~150 us of main-thread
 * time (measured: ~100 ms for the whole venv against ~15 ms). The loop is yielded between folders,
 * so the children started meanwhile (the prefix check, the own-code compile) are served; and a
 * failing entry stops the walk at once, with nothing of it still in flight when the caller
 * removes the clone.
 */
async function cloneTree(src: string, dst: string, from: { venv: string; release: string }, to: string, rel = '', early?: Early): Promise<void> {
  mkdirSync(dst, { mode: statSync(src).mode & 0o7777 });
  const entries = readdirSync(src, { withFileTypes: true });
  const relOf = (e: Dirent) => (rel ? `${rel}/${e.name}` : e.name);
  const clone = (e: Dirent): void => {
    const [s, d, r] = [path.join(src, e.name), path.join(dst, e.name), relOf(e)];
    if (e.isSymbolicLink()) {
      const target = readlinkSync(s);
      const inside = target === from.venv || target.startsWith(from.venv + '/');
      return symlinkSync(inside ? to + target.slice(from.venv.length) : target, d);
    }
    if (!e.isFile()) throw new Error(`unexpected file type at ${r}`);
    if (e.name === 'direct_url.json' || e.name.endsWith('.pth') || e.name.endsWith('.egg-link')) {
      if (readFileSync(s, 'utf8').includes(from.release)) throw new Error(`${r} refers to ${from.release}`);
    }
    if (r === 'pyvenv.cfg' || r.startsWith('bin/')) {
      const buf = readFileSync(s);
      if (!buf.includes(0) && buf.includes(from.venv)) {
        const mode = statSync(s).mode & 0o7777;
        writeFileSync(d, buf.toString('utf8').split(from.venv).join(to), { flag: 'wx', mode });
        return chmodSync(d, mode); // writeFile's mode is filtered by the umask
      }
    }
    return linkSync(s, d);
  };
  /** These entries' files and links, then their folders, each after a turn of the loop. */
  const cloneAll = async (some: Dirent[]): Promise<void> => {
    for (const e of some) if (!e.isDirectory()) clone(e);
    for (const e of some.filter((x) => x.isDirectory())) {
      await yieldToLoop();
      await cloneTree(path.join(src, e.name), path.join(dst, e.name), from, to, relOf(e));
    }
  };
  if (early) {
    await cloneAll(entries.filter((e) => early.names.includes(e.name)));
    early.done();
    // Whatever the callback started gets a turn of the loop before the rest of the walk.
    await yieldToLoop();
  }
  await cloneAll(entries.filter((e) => !early?.names.includes(e.name)));
}

/** Top-level entries cloned first, and what to do once they are there. */
interface Early {
  names: string[];
  done: () => void;
}

/** What makes a venv's interpreter start as the venv's (sys.prefix): its bin/ and pyvenv.cfg. */
const INTERPRETER_ENTRIES = ['bin', 'pyvenv.cfg'];

/**
 * `onInterpreter`: called once the clone's interpreter can start, before the rest is cloned or
 * checked. The clone's own prefix check starts then too, and runs while the rest is cloned; it has
 * exited before this settles, whatever the outcome.
 */
async function cloneVenv(fromRelease: string, venvDir: string, as: ServiceIdentity, onInterpreter?: () => void): Promise<void> {
  const from = { release: fromRelease, venv: path.join(fromRelease, VENV_DIR) };
  // An object: the compiler must see that the clone's callback sets it.
  const check: { prefix: Promise<string> | null } = { prefix: null };
  const interpreterReady = () => {
    // sys.prefix comes from bin/ and pyvenv.cfg alone: the rest of the clone cannot change the answer.
    check.prefix = py.venvPrefix(py.venvPython(venvDir), as);
    check.prefix.catch(() => {}); // judged below, once the clone is whole
    onInterpreter?.();
  };
  try {
    await cloneTree(from.venv, venvDir, from, venvDir, '', { names: INTERPRETER_ENTRIES, done: interpreterReady });
    // A source venv built under another path (another root) keeps pointing there: not a clone.
    const activate = await readFile(path.join(venvDir, 'bin', 'activate'), 'utf8').catch(() => null);
    if (activate !== null && !activate.includes(venvDir)) throw new Error(`${from.venv} was built at another path`);
    const prefix = await check.prefix!;
    if ((await realpath(prefix)) !== (await realpath(venvDir))) throw new Error(`cloned venv reports prefix ${prefix}`);
  } finally {
    // Never a check of the service user's left running into the caller's cleanup.
    await check.prefix?.catch(() => {});
  }
}

/**
 * The release's own code, byte-compiled by the host interpreter (the binary every venv of this
 * spec links to: the same magic number and, since the paths are the release's, the same .pyc
 * files as the venv's interpreter would write) while its venv is cloned. Started at most once;
 * `settled` waits for the compile to have exited, whatever its outcome.
 */
interface OwnCodeCompile {
  start(): void;
  readonly started: boolean;
  /** Resolves once the compile's process was started (or the compile failed before it could be). */
  launched(): Promise<void>;
  /** The compile's outcome (throws as byteCompile does); resolves at once when it never started. */
  result(): Promise<void>;
  settled(): Promise<void>;
}

function ownCodeCompile(spec: VenvSpec, releaseDir: string): OwnCodeCompile {
  let running: Promise<void> | null = null;
  let launched: Promise<void> = Promise.resolve();
  return {
    start() {
      if (running) return;
      let spawned = () => {};
      launched = new Promise((resolve) => (spawned = resolve));
      running = (async () => {
        try {
          await grantPycacheFolders(releaseDir, spec.runAs, (name) => name.startsWith('.'));
          // byteCompile spawns before its first await: the process runs once this call returns.
          const compiling = py.byteCompile(spec.python, await releaseCode(releaseDir), spec.runAs);
          spawned();
          await compiling;
        } finally {
          spawned();
        }
      })();
      running.catch(() => {}); // judged by result()
    },
    get started() {
      return running !== null;
    },
    launched: () => launched,
    result: () => running ?? Promise.resolve(),
    settled: async () => void (await running?.catch(() => {})),
  };
}

/**
 * The smoke import of a release whose venv is a clone of an identical one, started with the source
 * venv's interpreter as soon as the clone begins: the clone's files are the same inodes, so the
 * import need not wait for the walk, and it runs beside the walk and the compile instead of after
 * them. Settles to the error it failed with, or null; never rejects.
 */
type EarlySmoke = Promise<unknown>;

function startEarlySmoke(fromRelease: string, releaseDir: string, as: ServiceIdentity): EarlySmoke {
  // The compile beside it may still write the code's __pycache__/ as the service user: the import
  // (release code, the same user) sees the whole release read-only, so it cannot write there too.
  return py.smokeImport(py.venvPython(path.join(fromRelease, VENV_DIR)), releaseDir, as, { readOnly: true }).then(() => null, (err: unknown) => err);
}

/**
 * The smoke import's verdict for a clone. A failure is asked again of the clone's own interpreter
 * (without the read-only mount), whose error (paths, the line) is what the operator must see; a
 * hang is not waited for twice.
 */
async function confirmSmoke(reused: Reused, again: () => Promise<void>, log: Logger): Promise<void> {
  const err = await reused.smoke;
  if (err === null) return log.debug(`venv: smoke-imported from ${reused.from}'s identical venv, beside the clone`);
  if (err instanceof py.PythonStepError && err.signal) throw err;
  log.debug(`venv: the smoke import from ${reused.from}'s venv failed (${err instanceof Error ? err.message : String(err)}); asking the clone's own`);
  await again();
}

interface Reused {
  from: string;
  smoke: EarlySmoke;
}

/**
 * First candidate with the same hash and a venv on disk; the venv is cloned or the slot stays
 * empty. The release's own code is compiled and the app smoke-imported meanwhile (`own`, the early
 * smoke); a clone that fails waits for both.
 */
async function tryReuse(venvDir: string, hash: string, candidates: ReuseCandidate[], log: Logger, as: ServiceIdentity, own: OwnCodeCompile): Promise<Reused | null> {
  const self = path.dirname(venvDir);
  for (const c of candidates) {
    const from = path.resolve(c.releaseDir);
    if (c.requirementHash !== hash || from === self) continue;
    if (!(await exists(path.join(from, VENV_DIR, 'pyvenv.cfg')))) continue;
    own.start();
    // The compile is the longer of the two: started first, not starved by the clone's walk.
    await own.launched();
    const smoke = startEarlySmoke(from, self, as);
    try {
      await cloneVenv(from, venvDir, as);
      return { from, smoke };
    } catch (err) {
      log.warn(`could not reuse the venv of ${from} (${err instanceof Error ? err.message : String(err)}); building it`);
      await Promise.all([own.settled(), smoke]);
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

/** pip's own lines under --verbose; the package it is on as the live line's detail. */
function pipProgress(progress: Progress): (line: string) => void {
  return (line) => {
    progress.output(line);
    const m = /^\s*(Collecting|Processing|Downloading|Building wheel for|Installing collected packages:)\s+(\S.*?)\s*$/.exec(line);
    if (m) progress.detail(`${m[1]!.replace(/:$/, '').toLowerCase()} ${path.basename(m[2]!)}`);
  };
}

/** `+1 ~1 -0`: added, changed, removed distributions. */
export function changeCounts(c: IncrementalChanges): string {
  return `+${c.added.length} ~${c.changed.length} -${c.removed.length}`;
}

/** A path, URL or editable requirement installs what it names, not a `name==version` pip can pin. */
const DIRECT_REQUIREMENT = /^(\.|\/|~|-e\b|--editable\b|[a-z][a-z0-9+.-]*:\/\/)|^[A-Za-z0-9][\w.-]*(\[[^\]]*\])?\s*@/i;

/** Every line pip acts on for a set: the single requirements, then each file's (nested files included). */
async function actionableLines(releaseDir: string, set: RequirementSet): Promise<string[]> {
  const queue = set.files.map((f) => path.join(releaseDir, f));
  const seen = new Set<string>();
  const lines = [...set.requirements];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = await readFile(file, 'utf8').catch(() => '');
    lines.push(...py.requirementLines(text));
    queue.push(...nestedFiles(text, file));
  }
  return lines;
}

/**
 * Whether every line pip would act on (nested files included) is a plain requirement or a nested
 * file, so the clone can be brought to the new set by `name==version` pins alone.
 */
async function pinnable(releaseDir: string, set: RequirementSet): Promise<boolean> {
  const lines = await actionableLines(releaseDir, set);
  // Options in a file (an index, find-links, hashes) would not reach a pinned install of the
  // difference: such a release is built afresh, with its options, rather than from another index.
  const option = (l: string) => /(^|\s)--?[a-z]/i.test(l) && !/^(-r|-c|--requirement|--constraint)(\s|=|(?<=^-[rc]))/.test(l);
  return !lines.some((l) => DIRECT_REQUIREMENT.test(l) || option(l));
}

/** The newest complete release whose venv was made from the same interpreter and Python version. */
async function nearestVenv(self: string, python: string, version: string, candidates: ReuseCandidate[]): Promise<string | null> {
  const interpreter = await realpath(python).catch(() => null);
  for (const c of candidates) {
    const from = path.resolve(c.releaseDir);
    if (from === self || c.pythonVersion !== version) continue;
    if (!(await exists(path.join(from, VENV_DIR, 'pyvenv.cfg')))) continue;
    if ((await realpath(path.join(from, VENV_DIR, 'bin', 'python')).catch(() => null)) === interpreter) return from;
  }
  return null;
}

class ResolveFailed extends Error {
  constructor(override readonly cause: unknown) {
    super('pip resolve failed');
  }
}

interface IncrementalPlan {
  spec: VenvSpec;
  set: RequirementSet;
  venvDir: string;
  findLinks: string | null;
  log: Logger;
  progress?: Progress;
}

/** What the clone must become, from the pins alone when they are their own closure; null: ask pip. */
async function newSet(plan: IncrementalPlan): Promise<py.ResolvedDist[] | null> {
  const { spec, set, findLinks, log } = plan;
  const releaseDir = path.dirname(plan.venvDir);
  // A pip resolve costs a pip start (~1 s); a fully pinned release (pip-compile, pip freeze) with
  // its wheels already names the new set. Anything short of certain is left to pip.
  if (!findLinks) return null;
  const lines = (await actionableLines(releaseDir, set)).filter((l) => !/^(-r|--requirement)(\s|=|(?<=^-r))/.test(l));
  const closure = await py.pinnedClosure({ hostPython: spec.python, requirements: lines, wheelsDir: findLinks, cwd: releaseDir, as: spec.runAs });
  if ('open' in closure) {
    log.debug(`venv: resolving with pip (${closure.open})`);
    return null;
  }
  log.debug('venv: requirements pin their whole closure: no resolve');
  plan.progress?.detail('requirements pin their whole closure: no resolve');
  return closure.dists;
}

/**
 * Clone the nearest venv and let pip apply only the difference: root removes what the new set no
 * longer has (or has in another version) by each dist's RECORD while the clone is still all root's,
 * then hands the clone's folders (never its shared files) to the service user, and pip installs the
 * missing pins with --no-deps. Null, with the slot empty and a warning, when that cannot be done:
 * the caller builds afresh.
 */
async function tryIncremental(plan: IncrementalPlan, from: string): Promise<IncrementalChanges | null> {
  const { spec, set, venvDir, findLinks, log } = plan;
  const releaseDir = path.dirname(venvDir);
  const step = (label: string) => plan.progress?.step(label);
  step(`venv: clone ${path.basename(from)}'s and resolve the new requirements`);
  // Set from the clone's callback: an object, so the compiler sees it may change.
  const pending: { installer: WheelInstaller | null; resolves: boolean } = { installer: null, resolves: false };
  try {
    const resolving = newSet(plan).then((pinned) => {
      pending.resolves = pinned === null;
      return pinned ?? py.pipResolve({
        hostPython: spec.python, requirementFiles: set.files.map((f) => path.join(releaseDir, f)), requirements: set.requirements, findLinks, cwd: releaseDir, as: spec.runAs,
      });
    });
    const cloning = cloneVenv(from, venvDir, spec.runAs, () => {
      // pip's installer loads (~0.5 s) while root clones, checks and removes; it writes nothing
      // before install() (the clone is all root's until then), and install() or close() settles
      // only once it has exited.
      if (findLinks && !pending.resolves) pending.installer = startWheelInstaller({ hostPython: spec.python, venvDir, wheelsDir: findLinks, cwd: releaseDir, as: spec.runAs, onOutput: plan.progress && pipProgress(plan.progress) });
    });
    // Both settle before anything is removed: a clone still being made must not race the cleanup.
    const [resolved, cloned] = await Promise.allSettled([resolving, cloning]);
    if (resolved.status === 'rejected') {
      // The requirements themselves fail: a fresh build would fail the same way, only later.
      await pending.installer?.close();
      await rm(venvDir, { recursive: true, force: true });
      throw new ResolveFailed(resolved.reason);
    }
    if (cloned.status === 'rejected') throw cloned.reason;
    const wanted = resolved.value;
    killPoint('venv-cloned');
    const realVenv = await realpath(venvDir);
    const [site, ...more] = await sitePackages(realVenv);
    if (!site || more.length > 0) throw new Error(`${from} has ${more.length + (site ? 1 : 0)} site-packages folders`);
    const diff = planDiff(await installedDists(site), wanted);
    if (diff === null) throw new Error('a requirement names a URL or path');
    const changes = { added: diff.added, changed: diff.changed, removed: diff.removed };
    log.debug(`venv: incremental from ${from}: ${[...diff.added.map((d) => `+${d}`), ...diff.changed.map((d) => `~${d}`), ...diff.removed.map((d) => `-${d}`)].join(', ') || 'nothing to change'}`);
    for (const dist of diff.remove) await removeDist(realVenv, site, dist);
    // The service user may now add and unlink entries of the clone's folders; its shared files stay root's.
    await grantFolderTree(venvDir, spec.runAs);
    if (diff.install.length > 0) {
      step(`venv: pip install ${diff.install.length} changed package${diff.install.length === 1 ? '' : 's'}${findLinks ? ' (from wheels/)' : ''}`);
      const wheels = diff.installing.map((d) => ({ name: d.name, version: d.version, wheel: d.wheel ?? '' }));
      const ready = pending.installer;
      if (ready && wheels.every((w) => w.wheel !== '')) {
        // The closure check chose each wheel: pip's installer alone, without pip's start-up (~1 s).
        const how = await ready.install(wheels);
        log.debug(how.direct ? 'venv: installed the difference with pip\'s wheel installer' : `venv: pip install --no-deps (pip's wheel installer is not usable: ${how.why})`);
      } else {
        await ready?.close();
        const onOutput = plan.progress && pipProgress(plan.progress);
        await py.pipInstall({ hostPython: spec.python, venvDir, requirementFiles: [], requirements: diff.install, findLinks, cwd: releaseDir, as: spec.runAs, noDeps: true, onOutput });
      }
    }
    await pending.installer?.close();
    killPoint('venv-incremental-pip-done');
    return changes;
  } catch (err) {
    // Never a process of the service user's left running into a fresh build or the caller's cleanup.
    await pending.installer?.close();
    if (err instanceof ResolveFailed) throw err.cause;
    // A full disk fails a fresh build too, only later and with a less telling message.
    if (isDiskFull(err)) {
      await rm(venvDir, { recursive: true, force: true });
      throw err;
    }
    log.warn(`could not update a clone of ${from}'s venv (${err instanceof Error ? err.message : String(err)}); building it afresh`);
    await rm(venvDir, { recursive: true, force: true });
    return null;
  }
}

export interface BuildVenvOptions {
  log: Logger;
  reuseCandidates: ReuseCandidate[];
  progress?: Progress;
  /**
   * Work for the tree once it is root's again, run while the app is smoke-imported (the import
   * reads and writes nothing there); both are over before buildVenv returns or throws. Given the
   * venv folder when it is a plain clone nobody else wrote.
   */
  alongsideSmoke?: (untouched: string[]) => Promise<void>;
}

/**
 * Build `<release>/.venv` at its final path (a venv records its own location), from a clone of an
 * identical venv when one exists, then byte-compile and import the app. Throws on any failure;
 * the caller removes the release.
 */
export async function buildVenv(spec: VenvSpec, opts: BuildVenvOptions): Promise<BuiltVenv> {
  const step = (label: string) => opts.progress?.step(label);
  const started = performance.now();
  const since = () => Math.round(performance.now() - started);
  const releaseDir = path.resolve(spec.releaseDir);
  const venvDir = path.join(releaseDir, VENV_DIR);
  // The candidates' stamps are root's: a version recorded for this very interpreter file needs no spawn.
  const { version, identity } = await py.cachedPythonVersion(spec.python, spec.runAs, opts.reuseCandidates);
  py.assertSafePathSupport(version, spec.python);
  const set = await resolveRequirements(spec);
  const hash = await requirementHashFor(spec, version, set);
  // A venv shipped in the archive or left half-built is never trusted.
  if (await lstat(venvDir).then(() => true, () => false)) await rm(venvDir, { recursive: true, force: true });

  step('venv: look for an identical venv to clone');
  const wheels = path.join(releaseDir, 'wheels');
  const findLinks = (await exists(wheels)) ? wheels : null;
  const own = ownCodeCompile(spec, releaseDir);
  let reused: Reused | null = null;
  try {
    reused = await tryReuse(venvDir, hash, opts.reuseCandidates, opts.log, spec.runAs, own);
    // The release's code must compile, clone or no clone: a fresh venv would not change that.
    await own.result();
  } finally {
    // Never a compile or import of the service user's alive past this point.
    await Promise.all([own.settled(), reused?.smoke]);
  }
  let reusedFrom = reused?.from ?? null;
  // Compiled beside a clone that failed: its __pycache__/ folders are root's again before pip runs.
  if (!reusedFrom && own.started) await reclaimFromService(releaseDir, spec.runAs);
  const ownCompiled = reusedFrom !== null;
  let incremental: IncrementalChanges | null = null;
  if (reusedFrom) {
    killPoint('venv-cloned');
    opts.progress?.detail(`cloned ${path.basename(reusedFrom)}'s by hard links`);
  } else {
    const nearest = (await pinnable(releaseDir, set)) ? await nearestVenv(releaseDir, spec.python, version, opts.reuseCandidates) : null;
    if (nearest) {
      incremental = await tryIncremental({ spec, set, venvDir, findLinks, log: opts.log, progress: opts.progress }, nearest);
      if (incremental) {
        reusedFrom = nearest;
        opts.progress?.detail(`cloned ${path.basename(nearest)}'s by hard links; pip: ${changeCounts(incremental)}`);
      }
    }
  }
  if (!reusedFrom) {
    step('venv: create');
    // The service user builds the venv: it may write this folder and nothing else of the release.
    await grantFolder(venvDir, spec.runAs);
    await py.createVenv(spec.python, venvDir, spec.runAs);
    killPoint('venv-created');
    const reqs = set.files.map((f) => path.join(releaseDir, f));
    const what = [...set.files, ...(set.extras.length ? [`extras ${set.extras.join(', ')}`] : [])];
    const count = (await Promise.all(reqs.map((f) => readFile(f, 'utf8').then(py.requirementLines, () => [])))).flat().length + set.requirements.length;
    step(`venv: pip install ${count} package${count === 1 ? '' : 's'}${what.length ? ` (${what.join(', ')}${findLinks ? ', from wheels/' : ''})` : ''}`);
    await py.pipInstall({
      hostPython: spec.python, venvDir, requirementFiles: reqs, requirements: set.requirements, findLinks, cwd: releaseDir, as: spec.runAs,
      onOutput: opts.progress && pipProgress(opts.progress),
    });
    killPoint('venv-pip-done');
  }

  const python = py.venvPython(venvDir);
  // A clone's .pyc files are its source's, compiled when that was built: walking them again costs
  // more than the clone itself; pip compiled what it added to a clone. Third-party files that do not
  // compile (templates named .py) are skipped, as pip itself does; the app's own code must compile.
  step('venv: byte-compile');
  if (!reusedFrom) {
    await py.byteCompile(python, await sitePackages(venvDir), spec.runAs, { parallel: true }).catch((err: unknown) => {
      opts.log.warn(`some installed files did not byte-compile: ${err instanceof Error ? err.message : String(err)}`);
    });
  }
  if (!ownCompiled) {
    await grantPycacheFolders(releaseDir, spec.runAs, (name) => name.startsWith('.'));
    await py.byteCompile(python, await releaseCode(releaseDir), spec.runAs);
  }
  killPoint('venv-compiled');
  // Root's again, read-only, before the stamp and before release code runs from the new venv.
  const untouched = reusedFrom && !incremental ? [venvDir] : [];
  const reclaimed = await reclaimFromService(releaseDir, spec.runAs, { untouched });
  if (spec.runAs.switched) opts.log.debug(`venv: built as ${spec.runAs.name}; ${reclaimed} entries made root's`);
  step('venv: smoke import');
  const smokeImport = () => py.smokeImport(python, releaseDir, spec.runAs);
  // The tree is root's now: the caller's work on it (lock-down, flush) cannot race the import.
  const [smoke, alongside] = await Promise.allSettled([reused ? confirmSmoke(reused, smokeImport, opts.log) : smokeImport(), opts.alongsideSmoke?.(untouched)]);
  if (smoke.status === 'rejected') throw smoke.reason;
  killPoint('venv-smoke-done');
  if (alongside.status === 'rejected') throw alongside.reason;
  const durationMs = since();
  opts.log.debug(`venv: compiled and smoke-imported (${durationMs} ms in all)`);
  return { requirementHash: hash, pythonVersion: version, pythonIdentity: identity, reusedFrom, incremental, durationMs };
}
