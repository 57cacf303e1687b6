import { describe, expect, it } from 'vitest';
import { restartGroups } from '../../../../src/core/units/restart-groups.js';
import { bundledPackagingDir, renderUnits, type UnitOptions } from '../../../../src/core/units/units.js';
import { tempDirPerTest } from '../../../support/temp-dir.js';
import { appShapedRelease, INSTALLED_TOOL } from '../../../support/units.js';

const bundled = bundledPackagingDir();
const DEFAULTS: UnitOptions = { display: false, coreNet: false, toolCommand: INSTALLED_TOOL };
const tmpDir = tempDirPerTest('restart-groups-');

/** A release shipping the app-shaped units, with some files replaced or removed. */
const release = (changes: Record<string, string | null> = {}) => appShapedRelease(tmpDir.path, changes);

const webUnit = (unitSection: string) => `[Unit]\nDescription=web\n${unitSection}\n[Service]\nType=exec\nExecStart=/bin/true\nUser=smolotchi\n\n[Install]\nWantedBy=multi-user.target\n`;

describe('restart groups (DESIGN step 10: core before its dependents)', () => {
  it('core in a call of its own, then the rest in one: web keeps serving while core restarts', async () => {
    expect(restartGroups(await renderUnits(null, bundled, DEFAULTS))).toEqual([
      ['smolotchi-core.service'],
      ['smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-prune.timer'],
    ]);
    expect(restartGroups(await renderUnits(null, bundled, { ...DEFAULTS, coreNet: true, display: true }))).toEqual([
      ['smolotchi-core-net.service'],
      ['smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-display.service', 'smolotchi-prune.timer'],
    ]);
  });

  it("the same two calls whatever the units say of their order: core's call returns once core is up", async () => {
    const unordered = await renderUnits(await release({ 'smolotchi-web.service': webUnit('Wants=smolotchi-core.service') }), bundled, DEFAULTS);
    expect(restartGroups(unordered)).toEqual([['smolotchi-core.service'], ['smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-prune.timer']]);
  });

  it('a release without core is one call', async () => {
    const units = await renderUnits(null, bundled, DEFAULTS);
    const withoutCore = { ...units, startOrder: units.startOrder.filter((u) => u !== 'smolotchi-core.service') };
    expect(restartGroups(withoutCore)).toEqual([['smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-prune.timer']]);
  });
});
