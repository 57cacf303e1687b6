/**
 * Installs and enables the tool's boot-time check unit for `release init`.
 * Never renders it from a release's templates: the bundled one only.
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Context } from '../context.js';
import { writeFileAtomic } from '../fsutil.js';
import { bundledPackagingDir, renderToolUnit, TOOL_UNIT } from '../units/units.js';
import type { InitChange } from './changes.js';
import { pathExists } from './create-once.js';

// Where `systemctl enable` puts the link for the unit's WantedBy=multi-user.target.
const WANTS_DIR = 'multi-user.target.wants';

/** Install the boot-time check (the same file every install renders) and enable it. */
export async function ensureBootUnit(ctx: Context, dryRun: boolean): Promise<InitChange[]> {
  const { unitDir } = ctx.layout;
  const file = path.join(unitDir, TOOL_UNIT);
  const wanted = await renderToolUnit(bundledPackagingDir(), ctx.toolCommand);
  const current = await readFile(file, 'utf8').catch(() => null);
  const action = current === null ? 'created' : current === wanted.content ? 'kept' : 'changed';
  const changes: InitChange[] = [{ kind: 'unit', path: file, action, detail: `ExecStart=${ctx.toolCommand} release recover --boot` }];
  if (action !== 'kept' && !dryRun) {
    await writeFileAtomic(file, wanted.content);
    await ctx.services.daemonReload();
  }
  const link = path.join(unitDir, WANTS_DIR, TOOL_UNIT);
  if (await pathExists(link)) {
    changes.push({ kind: 'unit', path: link, action: 'kept', detail: 'enabled' });
  } else if (ctx.services.kind === 'none') {
    changes.push({ kind: 'unit', path: link, action: 'skipped', detail: `not enabled: ${ctx.services.reason ?? 'no service manager'}` });
  } else {
    if (!dryRun) await ctx.services.enable([TOOL_UNIT]);
    changes.push({ kind: 'unit', path: link, action: 'created', detail: 'enabled' });
  }
  return changes;
}
