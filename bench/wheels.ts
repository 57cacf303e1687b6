import { execa } from 'execa';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSampleApp, type SampleVersion } from '../scripts/sample-app.js';

/**
 * Writes a pure-Python wheel of `modules` modules (a zip: package, METADATA, WHEEL, RECORD), so
 * benches exercise a real pip install offline with a realistic number of files.
 */
const WHEEL_WRITER = String.raw`
import base64, hashlib, os, sys, zipfile
out, name, version, modules = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
dist = f"{name}-{version}.dist-info"
files = {f"{name}/__init__.py": f"__version__ = '{version}'\n"}
for i in range(modules):
    files[f"{name}/mod_{i}.py"] = "".join(f"def f{j}(x):\n    return x * {j} + {i}\n\n" for j in range(40))
files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
files[f"{dist}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: smolotchi-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
record = []
for path, text in files.items():
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
record.append(f"{dist}/RECORD,,")
files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
with zipfile.ZipFile(os.path.join(out, f"{name}-{version}-py3-none-any.whl"), "w") as z:
    for path, text in files.items():
        info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
        z.writestr(info, text)
`;

export async function writeWheel(python: string, outDir: string, name: string, version: string, modules: number): Promise<string> {
  await execa(python, ['-c', WHEEL_WRITER, outDir, name, version, String(modules)]);
  return `${name}==${version}`;
}

async function git(cwd: string, args: string[]): Promise<void> {
  await execa('git', args, { cwd, env: { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: os.devNull } });
}

/**
 * A release repository (tags v<ver>) whose versions ship the same three wheels (~150 modules) in
 * wheels/ as their requirements, so a venv build is a real offline pip install.
 */
export async function makeBenchRepo(python: string, dir: string, versions: SampleVersion[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await git(dir, ['init', '-q', '-b', 'main']);
  await git(dir, ['config', 'user.name', 'bench']);
  await git(dir, ['config', 'user.email', 'bench@example.invalid']);
  const wheels = path.join(dir, 'wheels');
  mkdirSync(wheels, { recursive: true });
  const reqs = [
    await writeWheel(python, wheels, 'benchdep_a', '1.0.0', 60),
    await writeWheel(python, wheels, 'benchdep_b', '2.1.0', 60),
    await writeWheel(python, wheels, 'benchdep_c', '0.3.0', 30),
  ];
  for (const v of versions) {
    // Each version is a whole tree: files an earlier one shipped (e.g. a health check) must go.
    for (const entry of readdirSync(dir)) if (entry !== '.git' && entry !== 'wheels') rmSync(path.join(dir, entry), { recursive: true });
    await writeSampleApp(dir, v);
    writeFileSync(path.join(dir, 'requirements', 'base.txt'), reqs.join('\n') + '\n');
    await git(dir, ['add', '-A']);
    await git(dir, ['commit', '-q', '-m', v.version]);
    await git(dir, ['tag', `v${v.version}`]);
  }
}
