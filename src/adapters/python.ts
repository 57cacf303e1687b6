/**
 * The module that runs Python or pip (venv, pip, byte-compile, smoke import; pip-wheels.ts: pip's wheel installer); one-line errors.
 * Never runs release code as root: every spawn goes through runAsService.
 */

import { readFile, realpath, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ReleaseError } from '../core/errors.js';
import { ProcessError, tailLines, type RunResult } from './process.js';
import { runAsService, type ServiceIdentity, type ServiceRunOptions } from './service-user.js';

const HOST_TOOLS_HINT = 'install the host tools: apt-get install python3-pip python3-venv';
// `pip --python <interpreter>` (the host pip driving another environment) arrived in pip 22.3.
const PIP_MIN = [22, 3] as const;
const MINUTE = 60_000;

/** A failed Python step; still a ProcessError, so --verbose can show its argv and stderr tail. */
export class PythonStepError extends ProcessError {
  constructor(
    step: string,
    argv: string[],
    result: RunResult & { signal?: string },
    cause: string,
    override readonly hint?: string,
  ) {
    super(argv, result.exitCode, result.signal, tailLines(`${result.stdout}\n${result.stderr}`), step);
    this.message = `${step} failed: ${cause}`.slice(0, 400);
  }
}

export function venvPython(venvDir: string): string {
  return path.join(venvDir, 'bin', 'python');
}

/**
 * The line of a pip or Python failure a person needs: pip's last `ERROR:` line, else a traceback's
 * exception line with the place it was raised (not `Traceback (most recent call last):`).
 */
export function relevantLine(output: string, baseDir?: string): string {
  const lines = output.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim() !== '');
  const pipError = lines.filter((l) => /^(ERROR|error): /.test(l) && !/^ERROR: Exception:$/.test(l)).pop();
  if (pipError) return pipError.replace(/^(ERROR|error): /, '');
  const exception = lines
    .filter((l) => /^[A-Za-z_][\w.]*(: |$)/.test(l) && !/^(Traceback|During handling|The above exception)/.test(l))
    .pop();
  if (!exception) return lines.pop() ?? 'no output';
  const frames = [...output.matchAll(/^\s*File "([^"]+)", line (\d+)/gm)].filter((m) => !m[1]!.startsWith('<'));
  const frame = frames.pop();
  if (!frame) return exception;
  const file = baseDir && frame[1]!.startsWith(baseDir + '/') ? path.relative(baseDir, frame[1]!) : frame[1]!;
  return `${exception} (${file}:${frame[2]})`;
}

async function pythonStep(step: string, file: string, args: string[], options: ServiceRunOptions, hint?: string): Promise<RunResult> {
  let result: RunResult & { signal?: string };
  try {
    result = await runAsService(file, args, options);
  } catch (err) {
    // Only a program that could not start lands here (missing interpreter, bad cwd).
    const cause = err instanceof ProcessError ? err.stderrTail : String(err);
    throw new ReleaseError(`${step} failed: cannot run ${file}: ${cause}`, undefined, hint ?? HOST_TOOLS_HINT);
  }
  if (result.exitCode === 0) return result;
  const cause =
    result.signal && options.timeoutMs
      ? `no result within ${Math.round(options.timeoutMs / 1000)} s (killed by ${result.signal})`
      : relevantLine(`${result.stdout}\n${result.stderr}`, options.cwd);
  throw new PythonStepError(step, [file, ...args], result, cause, hint);
}

/** `3.11.2`: recorded in the stamp and part of the requirement hash. */
export async function pythonVersion(python: string, as: ServiceIdentity): Promise<string> {
  const code = "import sys; print('%d.%d.%d' % sys.version_info[:3])";
  const r = await pythonStep('python version check', python, ['-I', '-c', code], { as, timeoutMs: MINUTE }, HOST_TOOLS_HINT);
  return r.stdout.trim();
}

/**
 * The host interpreter as a file: its real path, device, inode, size and mtime. A Python upgrade
 * replaces the binary (a new inode and mtime), so the same identity means the same version.
 */
export async function interpreterIdentity(python: string): Promise<string | null> {
  try {
    const real = await realpath(python);
    const st = await stat(real, { bigint: true });
    return `${real} dev ${st.dev} ino ${st.ino} size ${st.size} mtime ${st.mtimeNs}`;
  } catch {
    return null;
  }
}

/** A version recorded with the identity of the interpreter that printed it. */
export interface KnownPythonVersion {
  pythonIdentity?: string | null;
  pythonVersion?: string;
}

/**
 * pythonVersion without the spawn when `known` recorded it for the interpreter's current identity.
 * `known` must come from root's own files only (release stamps): never from anything the service
 * user can write, or it could claim any version for root's interpreter.
 */
export async function cachedPythonVersion(python: string, as: ServiceIdentity, known: KnownPythonVersion[]): Promise<{ version: string; identity: string | null }> {
  const identity = await interpreterIdentity(python);
  const hit = identity === null ? undefined : known.find((k) => k.pythonIdentity === identity && typeof k.pythonVersion === 'string');
  if (hit) return { version: hit.pythonVersion!, identity };
  const version = await pythonVersion(python, as);
  // Taken again: an interpreter replaced while it was asked is not recorded under either identity.
  return { version, identity: (await interpreterIdentity(python)) === identity ? identity : null };
}

// The units run `python -P` (no working directory on sys.path): 3.11 brought the flag.
const SAFE_PATH_MIN = [3, 11] as const;

/** Refuses an interpreter too old for -P: its units would import from their working directory. */
export function assertSafePathSupport(version: string, python: string): void {
  const [major, minor] = version.split('.').map(Number);
  if (major! > SAFE_PATH_MIN[0] || (major === SAFE_PATH_MIN[0] && minor! >= SAFE_PATH_MIN[1])) return;
  throw new ReleaseError(
    `${python} is Python ${version}; the units need ${SAFE_PATH_MIN.join('.')} or newer (python -P keeps their working directory off sys.path)`,
    undefined,
    'set SMOLOTCHI_RELEASE_PYTHON to a Python 3.11+ interpreter',
  );
}

interface HostPip {
  version: string;
  /**
   * pip's `__pip-runner__.py`: what `pip --python X` itself runs with X, so running it with the
   * venv's interpreter directly is the same install without the host interpreter's start-up.
   */
  runner: string | null;
  /** The folder holding the host's `pip` package (what the runner puts first for `import pip`). */
  sources: string | null;
}

// One check per interpreter and process.
const checkedPips = new Map<string, HostPip>();

async function hostPip(python: string, as: ServiceIdentity): Promise<HostPip> {
  await hostPipVersion(python, as);
  return checkedPips.get(python)!;
}

/** The host pip's version and where its package lives (pip-wheels.ts calls its installer from there). */
export async function hostPipSources(python: string, as: ServiceIdentity): Promise<{ version: string; sources: string | null }> {
  const { version, sources } = await hostPip(python, as);
  return { version, sources };
}

/** The host pip's version; refuses a pip that cannot target another environment with `--python`. */
export async function hostPipVersion(python: string, as: ServiceIdentity): Promise<string> {
  const known = checkedPips.get(python);
  if (known !== undefined) return known.version;
  // `import pip` loads pip/__init__.py alone: ~0.05 s, where `pip --version` loads pip's whole CLI.
  const code = 'import os, pip; print("pip " + pip.__version__ + " from " + os.path.dirname(pip.__file__) + " (python")';
  const r = await runAsService(python, ['-I', '-c', code], { as, timeoutMs: MINUTE }).catch(() => null);
  const match = r?.exitCode === 0 ? /^pip (\d+)\.(\d+)\S*/.exec(r.stdout) : null;
  if (!match) throw new ReleaseError(`${python} has no pip (it installs requirements into each release's venv)`, undefined, HOST_TOOLS_HINT);
  const [major, minor] = [Number(match[1]), Number(match[2])];
  if (major < PIP_MIN[0] || (major === PIP_MIN[0] && minor < PIP_MIN[1])) {
    throw new ReleaseError(
      `${python} has ${match[0]}; installing into a venv with pip --python needs pip >= ${PIP_MIN.join('.')}`,
      undefined,
      HOST_TOOLS_HINT,
    );
  }
  // `pip X.Y from /usr/lib/python3/dist-packages/pip (python 3.11)`: a root-owned system folder.
  // The line ends right after `(python`: a trailing space in the pattern would never find the runner.
  const from = / from (\/\S+) \(python\b/.exec(r!.stdout)?.[1];
  const runner = from ? path.join(from, '__pip-runner__.py') : null;
  const usable = runner !== null && (await stat(runner).then((s) => s.isFile(), () => false));
  checkedPips.set(python, { version: match[0].slice(4), runner: usable ? runner : null, sources: from ? path.dirname(from) : null });
  return match[0].slice(4);
}

/** Without pip inside: ~0.16 s instead of ~6 s; the host pip installs into it. */
export async function createVenv(python: string, venvDir: string, as: ServiceIdentity): Promise<void> {
  await pythonStep('create venv', python, ['-m', 'venv', '--without-pip', venvDir], { as, timeoutMs: 2 * MINUTE }, HOST_TOOLS_HINT);
}

/** The lines pip acts on: no blanks, no comments. */
export function requirementLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter((l) => l !== '');
}

export interface PipInstallOptions {
  /** Each line pip prints, as it prints it (progress and --verbose). */
  onOutput?: (line: string) => void;
  hostPython: string;
  venvDir: string;
  /** Absolute, or relative to cwd. */
  requirementFiles: string[];
  /** Single requirement strings (a pyproject extra's), each checked to start with a project name. */
  requirements?: string[];
  /** A release's own wheels folder: install from it alone, with no index. */
  findLinks: string | null;
  cwd: string;
  as: ServiceIdentity;
  /** Exactly the requirements given (an incremental install's difference): no dependency resolution. */
  noDeps?: boolean;
}

/**
 * pip sees no PIP_* variable of root's (runAsService passes none) and no pip.conf: a release that
 * ships wheels must install exactly those, and root's index credentials are not the release's.
 */
const PIP_ENV = { PIP_CONFIG_FILE: os.devNull };

/** The requirement files and single requirements as pip arguments; null when there is nothing to install. */
async function requirementArgs(opts: Pick<PipInstallOptions, 'requirementFiles' | 'requirements' | 'cwd'>): Promise<string[] | null> {
  const files = opts.requirementFiles.map((f) => path.resolve(opts.cwd, f));
  const texts = await Promise.all(files.map((f) => readFile(f, 'utf8')));
  const single = opts.requirements ?? [];
  // An argument starting with '-' would be a pip option, not a requirement.
  const option = single.find((r) => !/^[A-Za-z0-9]/.test(r));
  if (option !== undefined) throw new ReleaseError(`refusing requirement ${JSON.stringify(option)}: not a project name`);
  if (single.length === 0 && texts.every((t) => requirementLines(t).length === 0)) return null;
  return [...files.flatMap((f) => ['-r', f]), ...single];
}

const PIP_COMMON = ['--no-input', '--disable-pip-version-check', '--no-cache-dir'];

export async function pipInstall(opts: PipInstallOptions): Promise<void> {
  const reqs = await requirementArgs(opts);
  if (reqs === null) return;
  const pip = await hostPip(opts.hostPython, opts.as);
  const args = ['install', ...PIP_COMMON, '--no-warn-script-location'];
  if (opts.noDeps) args.push('--no-deps');
  if (opts.findLinks) args.push('--no-index', '--find-links', opts.findLinks);
  args.push(...reqs);
  const options = { as: opts.as, cwd: opts.cwd, timeoutMs: 30 * MINUTE, onOutput: opts.onOutput };
  const python = venvPython(opts.venvDir);
  // The variable is the one pip --python sets for its child: the runner must not re-invoke itself.
  if (pip.runner) await pythonStep('pip install', python, [pip.runner, ...args], { ...options, env: { ...PIP_ENV, _PIP_RUNNING_IN_SUBPROCESS: '1' } });
  else await pythonStep('pip install', opts.hostPython, ['-m', 'pip', '--python', python, ...args], { ...options, env: PIP_ENV });
}

/** One distribution pip would install, from its `--report`. */
export interface ResolvedDist {
  name: string;
  version: string;
  /** The wheel of wheels/ the pinned-closure check matched to it (absent when pip resolved). */
  wheel?: string;
  /** Named by URL or path (not by name from an index or find-links): it cannot be pinned by name. */
  direct: boolean;
}

/**
 * Everything pip would install for these requirements into an empty environment of `hostPython`
 * (the interpreter the venv is made from, so markers match), without installing anything:
 * `pip install --dry-run --ignore-installed --report -`. Build backends of sdists run here, as the
 * service user, like any pip install.
 */
export async function pipResolve(opts: Omit<PipInstallOptions, 'venvDir' | 'noDeps' | 'onOutput'>): Promise<ResolvedDist[]> {
  const reqs = await requirementArgs(opts);
  if (reqs === null) return [];
  await hostPipVersion(opts.hostPython, opts.as);
  const args = ['-m', 'pip', 'install', ...PIP_COMMON, '--quiet', '--dry-run', '--ignore-installed', '--report', '-'];
  if (opts.findLinks) args.push('--no-index', '--find-links', opts.findLinks);
  args.push(...reqs);
  const r = await pythonStep('pip resolve', opts.hostPython, args, { as: opts.as, cwd: opts.cwd, env: PIP_ENV, timeoutMs: 30 * MINUTE });
  const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { install?: Array<{ metadata?: { name?: unknown; version?: unknown }; is_direct?: unknown }> };
  return (report.install ?? []).map((item) => {
    const { name, version } = item.metadata ?? {};
    if (typeof name !== 'string' || typeof version !== 'string') throw new ReleaseError('pip resolve failed: its report names a distribution without name or version');
    return { name, version, direct: item.is_direct === true };
  });
}

/**
 * Whether pinned requirements are their own closure, read from the release's wheels alone: every
 * line an exact `name==version` (markers evaluated for this interpreter), each pin exactly one
 * compatible wheel in wheels/, and every Requires-Dist of those wheels that applies met by a pin.
 * It only reads zip members (never imports or runs release code) and runs as the service user.
 * Exit 0 with a verdict; anything unexpected is "not closed", and the caller resolves with pip.
 */
const CLOSURE_CHECK = String.raw`
import json, os, sys, zipfile
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.specifiers import SpecifierSet
from pip._vendor.packaging.tags import sys_tags
from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
from pip._vendor.packaging.version import Version

class Open(Exception):
    pass

def headers(text):
    out, last = [], None
    for line in text.split("\n"):
        if line.strip() == "":
            break
        if line[:1] in (" ", "\t") and last is not None:
            out[last] = (out[last][0], out[last][1] + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise Open("METADATA has a header line without a colon")
        out.append((name.strip().lower(), value.strip()))
        last = len(out) - 1
    return out

def check(lines, wheels, cap):
    env = {"extra": ""}
    python = Version(".".join(map(str, sys.version_info[:3])))
    pins = {}
    for line in lines:
        req = Requirement(line)
        if req.url or req.extras:
            raise Open(f"{line} names a URL or extras")
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or specs[0].version.endswith("*"):
            raise Open(f"{req.name} is not pinned to one version")
        key = canonicalize_name(req.name)
        if key in pins and pins[key][0] != specs[0]:
            raise Open(f"{req.name} is pinned twice")
        pins[key] = (specs[0], None)
    supported = set(sys_tags())
    for entry in os.scandir(wheels):
        if not entry.name.endswith(".whl"):
            continue
        try:
            name, version, _, tags = parse_wheel_filename(entry.name)
        except Exception:
            continue
        pin = pins.get(name)
        if pin is None or not pin[0].contains(version, prereleases=True) or not (tags & supported):
            continue
        if pin[1] is not None:
            raise Open(f"{name} has more than one matching wheel")
        if not entry.is_file(follow_symlinks=False):
            raise Open(f"{entry.name} is not a plain file")
        pins[name] = (pin[0], entry.path)
    dists, wanted = [], {}
    for key, (spec, wheel) in pins.items():
        if wheel is None:
            raise Open(f"{key} has no compatible wheel in wheels/")
        with zipfile.ZipFile(wheel) as z:
            members = [i for i in z.infolist() if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/METADATA")]
            if len(members) != 1:
                raise Open(f"{os.path.basename(wheel)} has {len(members)} METADATA files")
            # Bounded: a release's wheel could claim or inflate to any size.
            if members[0].file_size > cap:
                raise Open(f"{os.path.basename(wheel)} has an oversized METADATA")
            with z.open(members[0]) as f:
                data = f.read(cap + 1)
            if len(data) > cap:
                raise Open(f"{os.path.basename(wheel)} has an oversized METADATA")
        fields = headers(data.decode("utf-8"))
        one = lambda field: [v for k, v in fields if k == field]
        names, versions = one("name"), one("version")
        if len(names) != 1 or len(versions) != 1 or canonicalize_name(names[0]) != key or not spec.contains(versions[0], prereleases=True):
            raise Open(f"{os.path.basename(wheel)} names another project or version in its METADATA")
        for rp in one("requires-python"):
            if not SpecifierSet(rp).contains(python, prereleases=True):
                raise Open(f"{names[0]} {versions[0]} requires Python {rp}")
        dists.append({"name": names[0], "version": versions[0], "wheel": wheel})
        wanted[key] = Version(versions[0])
        for line in one("requires-dist"):
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            if req.url or req.extras:
                raise Open(f"{names[0]} needs {line}")
            dists[-1].setdefault("requires", []).append((canonicalize_name(req.name), str(req.specifier), line))
    for d in dists:
        for dep, spec, line in d.pop("requires", []):
            if dep not in wanted:
                raise Open(f"{d['name']} needs {dep}, which is not pinned")
            if not SpecifierSet(spec).contains(wanted[dep], prereleases=True):
                raise Open(f"{d['name']} needs {line}, not the pinned {wanted[dep]}")
    return dists

try:
    verdict = {"dists": check(json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]))}
except Exception as e:
    verdict = {"open": (str(e) or type(e).__name__)[:300]}
print(json.dumps(verdict))
`;

/** Bytes of one wheel's METADATA the closure check reads at most (long descriptions included). */
const METADATA_CAP = 1024 * 1024;

export type PinnedClosure = { dists: ResolvedDist[] } | { open: string };

/**
 * The new set without a pip resolve, when `requirements` (every line pip acts on) pin their whole
 * closure from `wheelsDir`; `{ open: why }` otherwise, never a throw: the caller then resolves.
 */
export async function pinnedClosure(opts: { hostPython: string; requirements: string[]; wheelsDir: string; cwd: string; as: ServiceIdentity }): Promise<PinnedClosure> {
  try {
    const args = ['-I', '-c', CLOSURE_CHECK, JSON.stringify(opts.requirements), opts.wheelsDir, String(METADATA_CAP)];
    const r = await runAsService(opts.hostPython, args, { as: opts.as, cwd: opts.cwd, timeoutMs: MINUTE });
    if (r.exitCode !== 0) return { open: `the closure check failed: ${relevantLine(`${r.stdout}\n${r.stderr}`)}` };
    const verdict = JSON.parse(r.stdout) as { dists?: Array<{ name?: unknown; version?: unknown; wheel?: unknown }>; open?: unknown };
    if (typeof verdict.open === 'string') return { open: verdict.open };
    if (!Array.isArray(verdict.dists)) return { open: 'the closure check gave no verdict' };
    const dists: ResolvedDist[] = [];
    for (const d of verdict.dists) {
      if (typeof d.name !== 'string' || typeof d.version !== 'string') return { open: 'the closure check named a distribution without name or version' };
      if (typeof d.wheel !== 'string') return { open: 'the closure check named no wheel for a distribution' };
      dists.push({ name: d.name, version: d.version, wheel: d.wheel, direct: false });
    }
    return { dists };
  } catch (err) {
    return { open: `the closure check failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/**
 * Services run with /opt read-only, so every .pyc must exist before the first start. `parallel`
 * (a worker per CPU) pays off for a whole site-packages; for a release's own few files the pool's
 * start-up costs more than the compiling.
 */
export async function byteCompile(python: string, dirs: string[], as: ServiceIdentity, opts: { parallel?: boolean } = {}): Promise<void> {
  if (dirs.length === 0) return;
  const cwd = path.dirname(dirs[0]!);
  const jobs = opts.parallel ? ['-j', '0'] : [];
  // -P: with -m the working directory (here the release) would come first on sys.path, and a
  // release's own compileall.py would run in place of the compiler.
  await pythonStep('byte-compile', python, ['-P', '-m', 'compileall', '-q', ...jobs, ...dirs], { as, cwd, timeoutMs: 10 * MINUTE });
}

/** Import the app the way its units will, without writing bytecode into the release. */
export async function smokeImport(python: string, releaseDir: string, as: ServiceIdentity, opts: { module?: string; timeoutMs?: number; readOnly?: boolean } = {}): Promise<void> {
  const { module = 'smolotchi.cli', timeoutMs = 2 * MINUTE } = opts;
  // The module name travels as an argument, never as code. -P as in the units: the release comes
  // from PYTHONPATH alone, never from the working directory.
  const code = 'import importlib, sys; importlib.import_module(sys.argv[1])';
  const env = { PYTHONPATH: releaseDir, PYTHONDONTWRITEBYTECODE: '1' };
  const readOnly = opts.readOnly ? [releaseDir] : [];
  await pythonStep(`smoke import of ${module}`, python, ['-P', '-c', code, module], { as, cwd: releaseDir, env, timeoutMs, readOnly });
}

/** Where a venv believes it lives: a cloned venv must answer with its own path. */
export async function venvPrefix(python: string, as: ServiceIdentity): Promise<string> {
  const r = await pythonStep('venv check', python, ['-I', '-c', 'import sys; print(sys.prefix)'], { as, timeoutMs: MINUTE });
  return r.stdout.trim();
}
