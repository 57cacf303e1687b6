import { mkdtempSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RenderedUnits } from '../../src/core/units/unit-files.js';

/** Units shaped like the real app's own packaging/systemd (our words, its layout). */
export const APP_SHAPED_UNITS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'app-systemd');

/** The tool command the unit tests render into units: an installed package's, not the checkout's. */
export const INSTALLED_TOOL = '/usr/bin/node /usr/lib/smolotchi/dist/src/cli.js';

/** The rendered content of one unit file (by its path under the unit folder), or undefined. */
export const renderedFile = (r: RenderedUnits, relPath: string) => r.files.find((f) => f.relPath === relPath)?.content;

/** A release folder under `parent` whose packaging/systemd is the app-shaped set, with files replaced (or removed: null). */
export async function appShapedRelease(parent: string, changes: Record<string, string | null> = {}): Promise<string> {
  const dir = mkdtempSync(path.join(parent, 'release-'));
  await fs.cp(APP_SHAPED_UNITS, path.join(dir, 'packaging', 'systemd'), { recursive: true });
  for (const [rel, content] of Object.entries(changes)) {
    const full = path.join(dir, 'packaging', 'systemd', rel);
    if (content === null) await fs.rm(full, { recursive: true, force: true });
    else {
      await fs.mkdir(path.dirname(full), { recursive: true });
      await fs.writeFile(full, content);
    }
  }
  return dir;
}
