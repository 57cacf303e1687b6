import { execa } from 'execa';

/**
 * Writes a pure-Python wheel (a zip: package, METADATA, WHEEL, RECORD, optionally `modules` extra
 * modules and a `<name>-hello` console script), so tests, benches and fixtures run a real pip
 * install offline: pip cannot reach an index here.
 */
const WHEEL_WRITER = String.raw`
import base64, hashlib, os, sys, zipfile
out, name, version, modules, script = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
requires = "".join(f"Requires-Dist: {r}\n" for r in sys.argv[6:])
dist = f"{name}-{version}.dist-info"
files = {f"{name}/__init__.py": f"__version__ = VALUE = {version!r}\ndef main():\n    print('hello from {name}')\n"}
for i in range(modules):
    files[f"{name}/mod_{i}.py"] = "".join(f"def f{j}(x):\n    return x * {j} + {i}\n\n" for j in range(40))
files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}"
files[f"{dist}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: smolotchi-fixture\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
if script:
    files[f"{dist}/entry_points.txt"] = f"[console_scripts]\n{name}-hello = {name}:main\n"
record = []
for path, text in files.items():
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
record.append(f"{dist}/RECORD,,")
files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
with zipfile.ZipFile(os.path.join(out, f"{name}-{version}-py3-none-any.whl"), "w") as z:
    for path, text in files.items():
        z.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), text)
`;

export interface WheelOptions {
  /** Extra modules of ~40 functions each, for a realistic number of files. */
  modules?: number;
  /** Ship a `<name>-hello` console script (pip writes it into the venv's bin/). */
  consoleScript?: boolean;
  /** Requires-Dist lines (`othername`, `othername>=1`): pip installs them as dependencies. */
  requires?: string[];
}

/** Write `<name>-<version>-py3-none-any.whl` into outDir; returns the requirement line `name==version`. */
export async function writeWheel(python: string, outDir: string, name: string, version: string, options: WheelOptions = {}): Promise<string> {
  await execa(python, ['-c', WHEEL_WRITER, outDir, name, version, String(options.modules ?? 0), options.consoleScript ? '1' : '0', ...(options.requires ?? [])]);
  return `${name}==${version}`;
}
