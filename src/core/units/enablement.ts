/**
 * Is a unit set enabled as `systemctl enable` leaves it? Read from the links systemd keeps in the
 * unit folder, so a deploy whose units did not change (a rollback, a same-units upgrade) skips a
 * systemctl call that on a device costs more than the rest of the unit step. Whatever this does
 * not model (Also=, DefaultInstance=, an [Install] in a drop-in, a specifier) answers "no": enable runs.
 */

import { lstatSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { parseUnit } from './unit-policy.js';
import { unitFiles, type RenderedUnits } from './unit-files.js';

/** The [Install] keys that make a link in `<target>.<kind>/`. */
const LINK_KINDS: Record<string, string> = { WantedBy: 'wants', RequiredBy: 'requires', UpheldBy: 'upholds' };

/** A link systemctl made for `unit`: lstat'ed and read, never followed. */
function linksTo(link: string, unit: string): boolean {
  try {
    return lstatSync(link).isSymbolicLink() && path.basename(readlinkSync(link)) === unit;
  } catch {
    return false;
  }
}

/** The links one unit's [Install] section asks for; null when it asks for something this does not model. */
function wantedLinks(rendered: RenderedUnits, unit: string): string[] | null {
  const [main, ...dropins] = unitFiles(rendered, unit);
  if (main?.relPath !== unit) return null;
  if (dropins.some((f) => parseUnit(f.content).some((d) => d.section === 'Install'))) return null;
  const links: string[] = [];
  for (const d of parseUnit(main.content)) {
    if (d.section !== 'Install') continue;
    const names = d.value.split(/\s+/).filter(Boolean);
    // An empty assignment or a specifier changes what systemctl would do: let it decide.
    if (names.length === 0 || names.some((n) => n.includes('%') || n.includes('/'))) return null;
    const kind = LINK_KINDS[d.key];
    if (kind) links.push(...names.map((target) => `${target}.${kind}/${unit}`));
    else if (d.key === 'Alias') links.push(...names);
    else return null;
  }
  return links;
}

/** True when every link `systemctl enable` would make for these units is there (none missing, none elsewhere). */
export function alreadyEnabled(unitDir: string, rendered: RenderedUnits): boolean {
  for (const unit of rendered.units) {
    const links = wantedLinks(rendered, unit);
    if (links === null || !links.every((rel) => linksTo(path.join(unitDir, rel), unit))) return false;
  }
  return true;
}
