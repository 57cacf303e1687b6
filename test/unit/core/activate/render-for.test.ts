import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderFor } from '../../../../src/core/activate/activate.js';
import type { Context } from '../../../../src/core/context.js';
import { IntegrityError } from '../../../../src/core/errors.js';
import { makeLayout, releaseDir } from '../../../../src/core/layout.js';
import { DEFAULT_SETTINGS } from '../../../../src/core/settings.js';
import { tempDirPerTest } from '../../../support/temp-dir.js';
import { INSTALLED_TOOL } from '../../../support/units.js';

const tmpDir = tempDirPerTest('render-for-');

/** Only what renderFor reads of a context: the layout, the unit settings and the tool command. */
const contextAt = (root: string): Context => ({ layout: makeLayout(root), settings: DEFAULT_SETTINGS, toolCommand: INSTALLED_TOOL }) as unknown as Context;

async function writeUnit(ctx: Context, version: string, name: string, content: string): Promise<void> {
  const file = path.join(releaseDir(ctx.layout, version), 'packaging', 'systemd', name);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content);
}

describe('renderFor within one command', () => {
  it('renders the bundled set for every release that ships no units, the same each time', async () => {
    const ctx = contextAt(tmpDir.path);
    for (const v of ['1.0.0', '1.1.0']) await fs.mkdir(releaseDir(ctx.layout, v), { recursive: true });
    const a = await renderFor(ctx, '1.0.0');
    const b = await renderFor(ctx, '1.1.0');
    expect(a.source).toBe('bundled');
    expect(b.templateHash).toBe(a.templateHash);
    expect(b.units).toEqual(a.units);
  });

  it("reads and judges a release's own units again on every call: a unit changed in between is refused", async () => {
    const ctx = contextAt(tmpDir.path);
    await writeUnit(ctx, '1.0.0', 'smolotchi-core.service', '[Service]\nExecStart=/usr/local/bin/smolotchi core\n');
    expect((await renderFor(ctx, '1.0.0')).source).toBe('release');
    // Hostile: the same release now asks to run as root.
    await writeUnit(ctx, '1.0.0', 'smolotchi-core.service', '[Service]\nUser=root\nExecStart=/usr/local/bin/smolotchi core\n');
    await expect(renderFor(ctx, '1.0.0')).rejects.toBeInstanceOf(IntegrityError);
  });

  it('renders a release that gained its own units since the bundled set was rendered from them', async () => {
    const ctx = contextAt(tmpDir.path);
    await fs.mkdir(releaseDir(ctx.layout, '1.0.0'), { recursive: true });
    expect((await renderFor(ctx, '1.0.0')).source).toBe('bundled');
    await writeUnit(ctx, '1.0.0', 'smolotchi-core.service', '[Service]\nExecStart=/usr/local/bin/smolotchi core\n');
    const r = await renderFor(ctx, '1.0.0');
    expect(r.source).toBe('release');
    expect(r.units).toContain('smolotchi-core.service');
  });
});
