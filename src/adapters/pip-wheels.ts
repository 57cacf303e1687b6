/**
 * Installs a release's own wheels into a venv through pip's wheel installer, without pip's command line.
 * Never runs as root (runAsService), and never tries again on a half-written venv: only an unusable pip API falls back.
 */

import path from 'node:path';
import { hostPipSources, pipInstall, PythonStepError, relevantLine, venvPython } from './python.js';
import { runAsService, type ServiceIdentity } from './service-user.js';

/**
 * `pip install --no-deps name==version` spends most of its second loading pip's command line, its
 * resolver and its network stack for what is, with the wheel already chosen, one call:
 * pip._internal.operations.install.wheel.install_wheel. This program makes that call with the venv's
 * interpreter and the host's own pip (found as __pip-runner__.py finds it), so the result is pip's:
 * the same path checks, RECORD, INSTALLER, REQUESTED, console scripts and byte-code. pip's internal
 * API is not stable: it is checked before anything is written, and exit 3 says "not usable here".
 */
const INSTALLER = String.raw`
import inspect, json, sys
from importlib.machinery import PathFinder

sources, version, wheels = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

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

print("Installing collected packages: " + ", ".join(w["name"] for w in wheels), flush=True)
for w in wheels:
    try:
        # As pip install does for a requirement named on its command line (user-supplied: REQUESTED).
        scheme = get_scheme(w["name"], user=False, home=None, root=None, isolated=False, prefix=None)
        install_wheel(w["name"], w["wheel"], scheme=scheme, req_description=w["name"] + "==" + w["version"], pycompile=True, warn_script_location=False, direct_url=None, requested=True)
    except Exception as e:
        print(f"ERROR: {e}", flush=True)
        sys.exit(1)
print("Successfully installed " + " ".join(w["name"] + "-" + w["version"] for w in wheels), flush=True)
`;

const UNAVAILABLE = 3;

export interface WheelToInstall {
  name: string;
  version: string;
  /** A wheel file directly inside `wheelsDir`. */
  wheel: string;
}

export interface WheelInstallOptions {
  hostPython: string;
  venvDir: string;
  wheels: WheelToInstall[];
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

/**
 * Install exactly these wheels (no dependency resolution), as `pip install --no-deps --no-index
 * --find-links wheelsDir name==version...` would. Falls back to that very command when pip's
 * installer cannot be called here; a failure once writing started throws, like a failed pip.
 */
export async function installWheels(opts: WheelInstallOptions): Promise<WheelInstallPath> {
  if (opts.wheels.length === 0) return { direct: true };
  for (const w of opts.wheels) {
    // Only the release's own shipped wheels: a path elsewhere would install what the release does not ship.
    if (path.dirname(w.wheel) !== opts.wheelsDir || !w.wheel.endsWith('.whl')) throw new Error(`${w.wheel} is not a wheel of ${opts.wheelsDir}`);
  }
  const pip = await hostPipSources(opts.hostPython, opts.as);
  const sources = opts.pipSources ?? pip.sources;
  let why = 'the host pip has no sources folder';
  if (sources !== null) {
    const python = venvPython(opts.venvDir);
    const args = ['-I', '-c', INSTALLER, sources, pip.version, JSON.stringify(opts.wheels)];
    const r = await runAsService(python, args, { as: opts.as, cwd: opts.cwd, timeoutMs: 30 * 60_000, onOutput: opts.onOutput });
    if (r.exitCode === 0) return { direct: true };
    const output = `${r.stdout}\n${r.stderr}`;
    const unavailable = r.exitCode === UNAVAILABLE ? /^unavailable: (.*)$/m.exec(r.stdout) : null;
    if (!unavailable) throw new PythonStepError('pip install', [python, ...args.slice(0, 2), '<installer>', ...args.slice(3)], r, relevantLine(output, opts.cwd));
    why = unavailable[1]!;
  }
  await pipInstall({
    hostPython: opts.hostPython, venvDir: opts.venvDir, requirementFiles: [], requirements: opts.wheels.map((w) => `${w.name}==${w.version}`),
    findLinks: opts.wheelsDir, cwd: opts.cwd, as: opts.as, noDeps: true, onOutput: opts.onOutput,
  });
  return { direct: false, why };
}
