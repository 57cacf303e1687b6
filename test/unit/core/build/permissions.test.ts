import { chmodSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockDownRelease, removeGroupOtherWrite } from '../../../../src/core/build/permissions.js';
import { tempDirPerTest } from '../../../support/temp-dir.js';

const tmp = tempDirPerTest('smolotchi-perms-');
const mode = (p: string) => statSync(p).mode & 0o777;

describe('removeGroupOtherWrite', () => {
  it('takes group/other write off every file and folder of a deep tree, and counts them', async () => {
    const release = path.join(tmp.path, 'opt/smolotchi/releases/1.0.0');
    const deep = path.join(release, '.venv/lib/python3/site-packages/pkg');
    mkdirSync(deep, { recursive: true });
    const files = Array.from({ length: 30 }, (_, i) => path.join(deep, `m${i}.py`));
    for (const f of files) writeFileSync(f, '');
    for (const f of files) chmodSync(f, 0o666);
    chmodSync(deep, 0o777);
    writeFileSync(path.join(release, 'ok.py'), '');
    chmodSync(path.join(release, 'ok.py'), 0o644);
    expect(await removeGroupOtherWrite(release)).toBe(31);
    expect(files.map(mode)).toEqual(files.map(() => 0o644));
    expect(mode(deep)).toBe(0o755);
    expect(await removeGroupOtherWrite(release)).toBe(0);
  });

  it('never follows a symlink in the tree to change what it points at', async () => {
    const release = path.join(tmp.path, 'opt/smolotchi/releases/1.0.0');
    mkdirSync(release, { recursive: true });
    const outside = path.join(tmp.path, 'outside');
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'target'), '');
    chmodSync(path.join(outside, 'target'), 0o666);
    chmodSync(outside, 0o777);
    symlinkSync(path.join(outside, 'target'), path.join(release, 'file-link'));
    symlinkSync(outside, path.join(release, 'dir-link'));
    await lockDownRelease(release);
    expect(mode(path.join(outside, 'target'))).toBe(0o666);
    expect(mode(outside)).toBe(0o777);
  });

  it('leaves a tree named untouched (a plain venv clone) unwalked, and locks down everything else', async () => {
    const release = path.join(tmp.path, 'opt/smolotchi/releases/1.1.0');
    const venvFile = path.join(release, '.venv/lib/x.py');
    mkdirSync(path.dirname(venvFile), { recursive: true });
    for (const f of [venvFile, path.join(release, 'app.py')]) {
      writeFileSync(f, '');
      chmodSync(f, 0o666);
    }
    await lockDownRelease(release, { untouched: [path.join(release, '.venv')] });
    expect(mode(path.join(release, 'app.py'))).toBe(0o644);
    expect(mode(venvFile)).toBe(0o666); // not walked: a clone can only carry its locked-down source's modes
  });
});
