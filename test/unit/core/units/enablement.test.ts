import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { alreadyEnabled } from '../../../../src/core/units/enablement.js';
import { bundledPackagingDir, renderUnits, type RenderedUnits } from '../../../../src/core/units/units.js';
import { tempDirPerTest } from '../../../support/temp-dir.js';
import { INSTALLED_TOOL } from '../../../support/units.js';

const tmpDir = tempDirPerTest('enablement-');
const render = () => renderUnits(null, bundledPackagingDir(), { display: false, coreNet: false, toolCommand: INSTALLED_TOOL });

/** What `systemctl enable` leaves: a link per WantedBy= target, pointing at the unit's file by absolute path. */
function enableAsSystemd(unitDir: string, rendered: RenderedUnits): void {
  for (const unit of rendered.units) {
    const content = rendered.files.find((f) => f.relPath === unit)!.content;
    for (const target of [...content.matchAll(/^WantedBy=(.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/))) {
      mkdirSync(path.join(unitDir, `${target}.wants`), { recursive: true });
      symlinkSync(`/etc/systemd/system/${unit}`, path.join(unitDir, `${target}.wants`, unit));
    }
  }
}

/** The bundled units, and a unit folder with every link systemctl enable would make for them. */
async function enabledDevice(): Promise<{ rendered: RenderedUnits; unitDir: string }> {
  const rendered = await render();
  const unitDir = path.join(tmpDir.path, 'system');
  mkdirSync(unitDir);
  enableAsSystemd(unitDir, rendered);
  return { rendered, unitDir };
}

describe('alreadyEnabled: is a unit set enabled as systemctl enable leaves it?', () => {
  it('yes once every WantedBy= link is there; no when one is missing (a unit disabled by hand)', async () => {
    const rendered = await render();
    const unitDir = path.join(tmpDir.path, 'system');
    mkdirSync(unitDir);
    expect(alreadyEnabled(unitDir, rendered)).toBe(false);
    enableAsSystemd(unitDir, rendered);
    expect(alreadyEnabled(unitDir, rendered)).toBe(true);
    rmSync(path.join(unitDir, 'multi-user.target.wants', 'smolotchi-ai.service'));
    expect(alreadyEnabled(unitDir, rendered)).toBe(false);
  });

  it('a link to another file, or a plain file in its place, is not an enabled unit', async () => {
    const { rendered, unitDir } = await enabledDevice();
    const link = path.join(unitDir, 'timers.target.wants', 'smolotchi-prune.timer');
    rmSync(link);
    symlinkSync('/etc/systemd/system/other.timer', link);
    expect(alreadyEnabled(unitDir, rendered)).toBe(false);
    rmSync(link);
    writeFileSync(link, '');
    expect(alreadyEnabled(unitDir, rendered)).toBe(false);
  });

  it('an [Install] it does not model (Also=, a drop-in with [Install], a specifier, a reset) leaves it to systemctl', async () => {
    const { rendered, unitDir } = await enabledDevice();
    const web = 'smolotchi-web.service';
    const withWeb = (change: (files: RenderedUnits['files']) => RenderedUnits['files']): RenderedUnits => ({ ...rendered, files: change(rendered.files) });
    const editWeb = (edit: (content: string) => string) => withWeb((files) => files.map((f) => (f.relPath === web ? { ...f, content: edit(f.content) } : f)));
    expect(alreadyEnabled(unitDir, editWeb((c) => `${c}\n[Install]\nAlso=smolotchi-ai.service\n`))).toBe(false);
    expect(alreadyEnabled(unitDir, editWeb((c) => c.replace('WantedBy=multi-user.target', 'WantedBy=%N.target')))).toBe(false);
    expect(alreadyEnabled(unitDir, editWeb((c) => c.replace('WantedBy=multi-user.target', 'WantedBy=')))).toBe(false);
    expect(alreadyEnabled(unitDir, withWeb((files) => [...files, { relPath: `${web}.d/90-install.conf`, content: '[Install]\nWantedBy=graphical.target\n' }]))).toBe(false);
    expect(alreadyEnabled(unitDir, rendered)).toBe(true);
  });
});
