/**
 * A hostile wheel for the venv tests: `climbpkg` 1.0.0 with a file whose path climbs out of site-packages.
 * Never installs it: the tests hand it to pip (or pip's installer) and expect a refusal.
 */
import { execa } from 'execa';

const WRITER = String.raw`
import sys, zipfile
d = "climbpkg-1.0.0.dist-info"
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("climbpkg/__init__.py", "")
    z.writestr(sys.argv[2], "escaped\n")
    z.writestr(d + "/METADATA", "Metadata-Version: 2.1\nName: climbpkg\nVersion: 1.0.0\n")
    z.writestr(d + "/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(d + "/RECORD", "")
`;

/** Write the wheel at `file` (named climbpkg-1.0.0-py3-none-any.whl) with a member at `climb` (e.g. `../../x`). */
export async function writeClimbingWheel(python: string, file: string, climb: string): Promise<void> {
  await execa(python, ['-c', WRITER, file, climb]);
}
