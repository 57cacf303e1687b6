import type { RenderedUnits } from '../../src/core/units/unit-files.js';

/** The tool command the unit tests render into units: an installed package's, not the checkout's. */
export const INSTALLED_TOOL = '/usr/bin/node /usr/lib/smolotchi/dist/src/cli.js';

/** The rendered content of one unit file (by its path under the unit folder), or undefined. */
export const renderedFile = (r: RenderedUnits, relPath: string) => r.files.find((f) => f.relPath === relPath)?.content;
