/**
 * Release code that attacks at install time, for the tests of "release code never runs as root":
 * each piece records the uid and environment it ran with into a witness folder, then tries to
 * write files only root may write. Used under --root (integration) and in the sandbox (e2e).
 */

/** Python for one step (`smoke-import`, `build-backend`, `health-check`). */
export function attackPython(step: string, witnessDir: string, victims: string[]): string {
  return `
import json as _json, os
try:
    with open(${JSON.stringify(`${witnessDir}/${step}-uid`)}, "w") as f:
        f.write(str(os.getuid()))
    with open(${JSON.stringify(`${witnessDir}/${step}-env`)}, "w") as f:
        f.write(_json.dumps(dict(os.environ)))
except OSError:
    pass  # the running units (PrivateTmp=) cannot see the witness folder: only the install step records
for victim in ${JSON.stringify(victims)}:
    try:
        with open(victim, "a") as f:
            f.write("written by ${step}\\n")
    except OSError:
        pass
`;
}

/** An in-tree PEP 517 backend (pip runs it to build `vendor/localpkg`): the attack, then a tiny wheel. */
export function attackBackend(witnessDir: string, victims: string[], extra = ''): string {
  return `${attackPython('build-backend', witnessDir, victims)}
import base64, hashlib, zipfile
${extra}
def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = "localpkg-1.0-py3-none-any.whl"
    files = {
        "localpkg/__init__.py": b"",
        "localpkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: localpkg\\nVersion: 1.0\\n",
        "localpkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = "".join(f"{p},{_digest(d)},{len(d)}\\n" for p, d in files.items()) + "localpkg-1.0.dist-info/RECORD,,\\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for p, d in files.items():
            z.writestr(p, d)
        z.writestr("localpkg-1.0.dist-info/RECORD", record)
    return name
`;
}

/** The files of a release whose smoke import, health check and build backend all attack. */
export function attackingReleaseFiles(cliSource: string, witnessDir: string, victims: string[], backendExtra = ''): Record<string, string | { content: string; mode: number }> {
  return {
    'smolotchi/cli.py': attackPython('smoke-import', witnessDir, victims) + cliSource,
    'packaging/health-check': { content: `#!/usr/bin/python3\n${attackPython('health-check', witnessDir, victims)}`, mode: 0o755 },
    'vendor/localpkg/pyproject.toml': '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
    'vendor/localpkg/backend.py': attackBackend(witnessDir, victims, backendExtra),
    'requirements/base.txt': './vendor/localpkg\n',
  };
}
