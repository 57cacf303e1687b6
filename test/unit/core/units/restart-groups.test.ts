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
  it('the bundled units: one call, since each service says After= core and timers wait on nothing', async () => {
    expect(restartGroups(await renderUnits(null, bundled, DEFAULTS))).toEqual([
      ['smolotchi-core.service', 'smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-prune.timer'],
    ]);
    // core-net in core's place: the bundled dependents name it too.
    expect(restartGroups(await renderUnits(null, bundled, { ...DEFAULTS, coreNet: true, display: true }))).toEqual([
      ['smolotchi-core-net.service', 'smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-display.service', 'smolotchi-prune.timer'],
    ]);
  });

  it('a dependent that does not say After= core waits for core in a call of its own', async () => {
    // The app-shaped units name core, not core-net: with core-net opted in, the rest waits for its call to end.
    const units = await renderUnits(await release(), bundled, { ...DEFAULTS, coreNet: true });
    expect(restartGroups(units)).toEqual([['smolotchi-core-net.service'], ['smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-prune.timer']]);
    const unordered = await renderUnits(await release({ 'smolotchi-web.service': webUnit('Wants=smolotchi-core.service') }), bundled, DEFAULTS);
    expect(restartGroups(unordered)).toEqual([['smolotchi-core.service', 'smolotchi-ai.service'], ['smolotchi-web.service', 'smolotchi-prune.timer']]);
  });

  it("reads After= from the unit's drop-ins too, and keeps the old way when one resets it", async () => {
    const viaDropin = await release({ 'smolotchi-web.service': webUnit(''), 'dropins/smolotchi-web.service.d/10-order.conf': '[Unit]\nAfter=smolotchi-core.service\n' });
    expect(restartGroups(await renderUnits(viaDropin, bundled, DEFAULTS))).toEqual([['smolotchi-core.service', 'smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-prune.timer']]);
    const reset = await release({ 'dropins/smolotchi-web.service.d/10-order.conf': '[Unit]\nAfter=\n' });
    expect(restartGroups(await renderUnits(reset, bundled, DEFAULTS))).toEqual([['smolotchi-core.service', 'smolotchi-ai.service'], ['smolotchi-web.service', 'smolotchi-prune.timer']]);
  });

  it('an After= in another section orders nothing', async () => {
    const misplaced = await release({ 'smolotchi-web.service': webUnit('').replace('[Service]\n', '[Service]\nAfter=smolotchi-core.service\n') });
    expect(restartGroups(await renderUnits(misplaced, bundled, DEFAULTS))).toEqual([['smolotchi-core.service', 'smolotchi-ai.service'], ['smolotchi-web.service', 'smolotchi-prune.timer']]);
  });
});
