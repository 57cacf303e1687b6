import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootDevice,
  e2eSettings,
  explain,
  mainPidUid,
  servedVersion,
  smolotchi,
  sandboxAvailable,
  unitInfo,
  verifyInstalledUnits,
  writeEnvFile,
  type Sandbox,
} from '../support/sandbox.js';

// Operator settings in /etc/smolotchi/env: the opt-in units (display; core-net replacing core)
// and the web UI's bind address, which the health gate must probe where the app really listens.
const available = sandboxAvailable();

const unitFile = (sb: Sandbox, unit: string) => existsSync(sb.fsPath(`/etc/systemd/system/${unit}`));

describe.skipIf(!available)('e2e: opt-in units and the web bind override', () => {
  let sb: Sandbox;
  let repo: string;

  beforeAll(async () => {
    ({ sb, repo } = await bootDevice([{ version: '1.0.0' }, { version: '1.1.0' }]));
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it('runs display and core-net (instead of core) when opted in, and serves on SMOLOTCHI_WEB_PORT', async () => {
    await writeEnvFile(
      sb,
      e2eSettings(repo, { SMOLOTCHI_RELEASE_DISPLAY: 1, SMOLOTCHI_RELEASE_CORE_NET: 1, SMOLOTCHI_WEB_PORT: 8099 }),
    );
    const r = await smolotchi(sb, ['release', 'install', '1.0.0']);
    expect(r.exitCode, explain(r)).toBe(0);

    expect((await unitInfo(sb, 'smolotchi-core-net.service')).ActiveState).toBe('active');
    expect((await unitInfo(sb, 'smolotchi-display.service')).ActiveState).toBe('active');
    expect((await unitInfo(sb, 'smolotchi-core.service')).ActiveState).toBe('inactive');
    expect(unitFile(sb, 'smolotchi-core-net.service')).toBe(true);
    expect(unitFile(sb, 'smolotchi-display.service')).toBe(true);
    const uid = Number((await sb.exec(['id', '-u', 'smolotchi'])).stdout.trim());
    expect(await mainPidUid(sb, 'smolotchi-core-net.service')).toBe(uid);
    // core-net's one extra privilege is CAP_NET_ADMIN, ambient for the smolotchi user.
    const caps = await sb.exec(['systemctl', 'show', '-p', 'AmbientCapabilities', '--value', 'smolotchi-core-net.service']);
    expect(caps.stdout).toMatch(/cap_net_admin/);

    expect(await servedVersion(sb, 8099)).toBe('1.0.0');
    expect(await servedVersion(sb, 8080)).toBeNull();
    const { units, result } = await verifyInstalledUnits(sb);
    expect(units).toEqual(expect.arrayContaining(['smolotchi-core-net.service', 'smolotchi-display.service']));
    expect(result.exitCode, explain(result)).toBe(0);
  });

  it('back to the defaults: core instead of core-net, no display, web on 127.0.0.1:8080', async () => {
    await writeEnvFile(sb, e2eSettings(repo));
    const r = await smolotchi(sb, ['release', 'install', '1.1.0']);
    expect(r.exitCode, explain(r)).toBe(0);

    expect((await unitInfo(sb, 'smolotchi-core.service')).ActiveState).toBe('active');
    expect((await unitInfo(sb, 'smolotchi-core-net.service')).ActiveState).not.toBe('active');
    expect((await unitInfo(sb, 'smolotchi-display.service')).ActiveState).not.toBe('active');
    expect(await servedVersion(sb, 8080)).toBe('1.1.0');
    expect(await servedVersion(sb, 8099)).toBeNull();
  });
});
