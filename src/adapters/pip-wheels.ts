/**
 * Installs a release's own wheels into a venv through pip's wheel installer, without pip's command line.
 * Never runs as root (runAsService), and never tries again on a half-written venv: only an unusable pip API falls back.
 */

import path from 'node:path';
import { hostPipSources, pipInstall, PythonStepError, relevantLine, venvPython } from './python.js';
import type { RunResult } from './process.js';
import { runAsService, type ServiceIdentity } from './service-user.js';

/**
 * `pip install --no-deps name==version` spends most of its second loading pip's command line, its
 * resolver and its network stack for what is, with the wheel already chosen, one call:
 * pip._internal.operations.install.wheel.install_wheel. This program makes that call with the venv's
 * interpreter and the host's own pip (found as __pip-runner__.py finds it), so the result is pip's:
 * the same path checks, RECORD, INSTALLER, REQUESTED, console scripts and byte-code. pip's internal
 * API is not stable: it is checked before anything is written, and exit 3 says "not usable here".
 * It loads pip first, then waits on stdin for the wheels (a line of JSON; end of input: nothing to
 * do), so the loading overlaps the clone's root-side work; it writes nothing before that line.
 */
const INSTALLER = String.raw`
import inspect, json, os, sys
from importlib.machinery import PathFinder

sources, version, venv = sys.argv[1], sys.argv[2], os.path.realpath(sys.argv[3])

class HostPip:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        return PathFinder.find_spec(fullname, [sources], target) if fullname == "pip" else None

sys.meta_path.insert(0, HostPip())
try:
    import pip
    if pip.__version__ != version:
        raise ImportError(f"pip {pip.__version__} is not the host pip {version}")
    from pip._internal.locations import get_scheme
    from pip._internal.operations.install.wheel import install_wheel
    inspect.signature(get_scheme).bind("x", user=False, home=None, root=None, isolated=False, prefix=None)
    inspect.signature(install_wheel).bind("x", "x.whl", scheme=None, req_description="x", pycompile=True, warn_script_location=False, direct_url=None, requested=True)
except Exception as e:
    print(f"unavailable: {type(e).__name__}: {e}"[:300], flush=True)
    sys.exit(3)

line = sys.stdin.readline()
if not line.strip():
    sys.exit(0)
wheels = json.loads(line)
print("Installing collected packages: " + ", ".join(w["name"] for w in wheels), flush=True)
for w in wheels:
    try:
        # As pip install does for a requirement named on its command line (user-supplied: REQUESTED).
        scheme = get_scheme(w["name"], user=False, home=None, root=None, isolated=False, prefix=None)
        # The scheme comes from the interpreter (its site, its distro's patches): one that is not the
        # venv's would aim pip at the system's folders (/usr/local as root): nothing but the venv.
        for key in ("purelib", "platlib", "headers", "scripts", "data"):
            where = os.path.realpath(getattr(scheme, key))
            if where != venv and not where.startswith(venv + os.sep):
                raise RuntimeError(f"pip's {key} folder {where} is outside the venv {venv}")
        install_wheel(w["name"], w["wheel"], scheme=scheme, req_description=w["name"] + "==" + w["version"], pycompile=True, warn_script_location=False, direct_url=None, requested=True)
    except Exception as e:
        print(f"ERROR: {e}", flush=True)
        sys.exit(1)
print("Successfully installed " + " ".join(w["name"] + "-" + w["version"] for w in wheels), flush=True)
# Every file is written and closed: skip tearing down pip's modules.
os._exit(0)
`;

const UNAVAILABLE = 3;

export interface WheelToInstall {
  name: string;
  version: string;
  /** A wheel file directly inside `wheelsDir`. */
  wheel: string;
}

export interface WheelInstallerOptions {
  hostPython: string;
  venvDir: string;
  /** The release's wheels/ folder: the fallback installs from it with --no-index. */
  wheelsDir: string;
  cwd: string;
  as: ServiceIdentity;
  onOutput?: (line: string) => void;
  /** Where the `pip` package is looked up; the host pip's by default (tests point it elsewhere). */
  pipSources?: string;
}

/** Which way the wheels went in: pip's installer called directly, or `pip install --no-deps`. */
export type WheelInstallPath = { direct: true } | { direct: false; why: string };

export interface WheelInstaller {
  /**
   * Install exactly these wheels (no dependency resolution), as `pip install --no-deps --no-index
   * --find-links wheelsDir name==version...` would. Falls back to that very command when pip's
   * installer cannot be called here; a failure once writing started throws, like a failed pip.
   */
  install(wheels: WheelToInstall[]): Promise<WheelInstallPath>;
  /** Let the installer end without installing anything; settles once it has exited. */
  close(): Promise<void>;
}

/**
 * Start the installer now (it loads pip, then waits): call `install` once the venv may be written,
 * or `close`. Either settles only after the process has exited, so none outlives the caller's step.
 */
export function startWheelInstaller(opts: WheelInstallerOptions): WheelInstaller {
  let send!: (line: string) => void;
  const input = new Promise<string>((resolve) => {
    send = resolve;
  });
  const python = venvPython(opts.venvDir);
  type Ended = { unavailable: string } | { r: RunResult; argv: string[] };
  const started = hostPipSources(opts.hostPython, opts.as).then(async (pip): Promise<Ended> => {
    const sources = opts.pipSources ?? pip.sources;
    if (sources === null) return { unavailable: 'the host pip has no sources folder' };
    // Not -S: without site, Python never reads pyvenv.cfg, and sys.prefix is the system's.
    const args = ['-I', '-c', INSTALLER, sources, pip.version, opts.venvDir];
    const r = await runAsService(python, args, { as: opts.as, cwd: opts.cwd, timeoutMs: 30 * 60_000, onOutput: opts.onOutput, input });
    return { r, argv: [python, '-I', '-c', '<installer>', ...args.slice(3)] };
  });
  const close = async (): Promise<void> => {
    send('');
    await started.catch(() => undefined);
  };
  const install = async (wheels: WheelToInstall[]): Promise<WheelInstallPath> => {
    for (const w of wheels) {
      // Only the release's own shipped wheels: a path elsewhere would install what the release does not ship.
      if (path.dirname(w.wheel) !== opts.wheelsDir || !w.wheel.endsWith('.whl')) {
        await close();
        throw new Error(`${w.wheel} is not a wheel of ${opts.wheelsDir}`);
      }
    }
    send(`${JSON.stringify(wheels)}\n`);
    const done = await started;
    let why: string;
    if ('unavailable' in done) why = done.unavailable;
    else {
      const { r, argv } = done;
      if (r.exitCode === 0) return { direct: true };
      const unavailable = r.exitCode === UNAVAILABLE ? /^unavailable: (.*)$/m.exec(r.stdout) : null;
      if (!unavailable) throw new PythonStepError('pip install', argv, r, relevantLine(`${r.stdout}\n${r.stderr}`, opts.cwd));
      why = unavailable[1]!;
    }
    await pipInstall({
      hostPython: opts.hostPython, venvDir: opts.venvDir, requirementFiles: [], requirements: wheels.map((w) => `${w.name}==${w.version}`),
      findLinks: opts.wheelsDir, cwd: opts.cwd, as: opts.as, noDeps: true, onOutput: opts.onOutput,
    });
    return { direct: false, why };
  };
  return { install, close };
}

/** Start the installer and install at once (no work to overlap). */
export async function installWheels(opts: WheelInstallerOptions & { wheels: WheelToInstall[] }): Promise<WheelInstallPath> {
  return startWheelInstaller(opts).install(opts.wheels);
}
