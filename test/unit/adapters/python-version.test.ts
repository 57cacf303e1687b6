import { chmodSync, copyFileSync, renameSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cachedPythonVersion, interpreterIdentity, pythonVersion } from '../../../src/adapters/python.js';
import { resolveServiceIdentity } from '../../../src/adapters/service-user.js';
import { PYTHON } from '../../support/python-host.js';
import { tempDirPerTest } from '../../support/temp-dir.js';

// A copy of the host interpreter stands in for root's: replacing it is what a Python upgrade does.
const tmp = tempDirPerTest('smolotchi-pyversion-');
const as = resolveServiceIdentity({ deviceRoot: false, env: {} });

function hostCopy(): string {
  chmodSync(tmp.path, 0o755); // the service user runs it
  const python = path.join(tmp.path, 'python3');
  copyFileSync(PYTHON, python);
  chmodSync(python, 0o755);
  return python;
}

describe('cachedPythonVersion', () => {
  it('takes the version a stamp recorded for the same interpreter file, without asking it', async () => {
    const python = hostCopy();
    const asked = await cachedPythonVersion(python, as, []);
    expect(asked.version).toBe(await pythonVersion(PYTHON, as));
    expect(asked.identity).toBe(await interpreterIdentity(python));
    // A recorded version the interpreter would never print shows that it was not asked.
    const known = [{ pythonIdentity: asked.identity, pythonVersion: '3.99.0' }];
    expect(await cachedPythonVersion(python, as, known)).toEqual({ version: '3.99.0', identity: asked.identity });
  });

  it('asks again once the interpreter was replaced (new inode) or rewritten (new mtime)', async () => {
    const python = hostCopy();
    const real = await pythonVersion(PYTHON, as);
    const identity = await interpreterIdentity(python);
    const known = [{ pythonIdentity: identity, pythonVersion: '3.99.0' }];
    // What a package upgrade does: a new file renamed over the old one.
    copyFileSync(PYTHON, `${python}.new`);
    chmodSync(`${python}.new`, 0o755);
    renameSync(`${python}.new`, python);
    const replaced = await cachedPythonVersion(python, as, known);
    expect(replaced.identity).not.toBe(identity);
    expect(replaced.version).toBe(real);
    // Same inode, rewritten in place: only the mtime tells.
    const now = await interpreterIdentity(python);
    utimesSync(python, new Date(), new Date(Date.now() + 5_000));
    expect(await cachedPythonVersion(python, as, [{ pythonIdentity: now, pythonVersion: '3.99.0' }])).toMatchObject({ version: real });
  });

  it('asks when no stamp recorded an identity (stamps of older tool versions)', async () => {
    const python = hostCopy();
    expect((await cachedPythonVersion(python, as, [{ pythonVersion: '3.99.0' }, { pythonIdentity: null, pythonVersion: '3.99.0' }])).version).toBe(await pythonVersion(PYTHON, as));
  });
});
