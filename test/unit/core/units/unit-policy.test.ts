import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../../../src/core/errors.js';
import { parseUnit } from '../../../../src/core/units/unit-policy.js';
import { bundledPackagingDir, renderUnits, type UnitOptions } from '../../../../src/core/units/units.js';
import { tempDirPerTest } from '../../../support/temp-dir.js';
import { appShapedRelease, INSTALLED_TOOL, renderedFile } from '../../../support/units.js';

const ALL: UnitOptions = { display: true, coreNet: true, toolCommand: INSTALLED_TOOL };
const bundled = bundledPackagingDir();

const tmpDir = tempDirPerTest('unit-policy-');

/** A release whose packaging/systemd is the app-shaped fixture plus (or minus) the given files. */
const appRelease = (changes: Record<string, string | null> = {}) => appShapedRelease(tmpDir.path, changes);

async function refusal(changes: Record<string, string>, options: UnitOptions = ALL): Promise<IntegrityError> {
  const err = await renderUnits(await appRelease(changes), bundled, options).then(() => null, (e: unknown) => e);
  expect(err, JSON.stringify(changes)).toBeInstanceOf(IntegrityError);
  expect((err as IntegrityError).exitCode).toBe(4);
  return err as IntegrityError;
}

const WEB = 'smolotchi-web.service';
const webWith = (lines: string) => `[Unit]\nDescription=web\n\n[Service]\nUser=smolotchi\n${lines}\n\n[Install]\nWantedBy=multi-user.target\n`;

describe('unit policy: what a release may not ask for', () => {
  // [directive line, where it lands (line number in smolotchi-web.service)]
  const hostile: Array<[string, string]> = [
    ['User=root', 'every unit runs as smolotchi'],
    ['User=', 'every unit runs as smolotchi'],
    ['Group=root', 'group smolotchi'],
    ['ExecStartPre=+/bin/sh -c "id > /etc/pwned"', 'the + prefix'],
    ['ExecStart=!/usr/bin/python3 -m smolotchi.cli web', 'the ! prefix'],
    ['ExecStartPost=!!/bin/true', 'the !! prefix'],
    ['ExecStop=-@/bin/sh kworker', 'the -@ prefix'],
    ['PermissionsStartOnly=true', 'ExecStartPre/ExecStartPost as root'],
    ['DynamicUser=yes', 'decides the user'],
    ['SupplementaryGroups=disk', 'extra groups'],
    ['PAMName=login', 'PAM'],
    ['AmbientCapabilities=CAP_SYS_ADMIN', 'may hold no capabilities'],
    ['CapabilityBoundingSet=~CAP_SYS_MODULE', 'inverted list'],
    ['NoNewPrivileges=false', 'set-user-ID'],
    ['RestrictSUIDSGID=no', 'set-user-ID files'],
    ['RestrictNamespaces=false', 'user namespaces'],
    ['ProtectSystem=false', 'read-only to running units'],
    ['StandardOutput=file:/etc/cron.d/pwned', 'root would open a file'],
    ['StandardInput=tty-force', 'root would open a file or terminal'],
    ['EnvironmentFile=/root/.aws/credentials', "operator's /etc/smolotchi/env"],
    ['StateDirectory=smolotchi/release', 'only /var/lib/smolotchi'],
    ['RuntimeDirectory=smolotchi-release', 'only /run/smolotchi'],
    ['ConfigurationDirectory=smolotchi', 'under /etc'],
    ['LoadCredential=shadow:/etc/shadow', 'read files'],
    ['BindPaths=/var/lib/smolotchi:/etc/cron.d', 'bind-mount'],
    ['RootDirectory=/var/lib/smolotchi/root', 'file system'],
    ['Nice=-20', 'negative nice'],
    ['OOMScoreAdjust=-1000', 'OOM killer'],
    ['Alias=getty@tty1.service', 'an alias'],
    ['DefaultInstance=x', 'instances'],
    ['Also=ssh.service', 'enables units'],
    ['Wants=reboot.target', 'smolotchi-* units'],
    ['Conflicts=ssh.service', 'smolotchi-* units'],
    ['RequiredBy=ssh.service', 'smolotchi-* units'],
    ['FailureAction=reboot', 'reboot or power off'],
  ];
  it.each(hostile)('refuses %s, naming the file and line (exit 4)', async (line, why) => {
    // Sections do not matter to the check: [Install] and [Unit] keys are refused wherever they stand.
    const err = await refusal({ [WEB]: webWith(line) });
    expect(err.message).toContain(`release unit packaging/systemd/${WEB}:6: ${line}`);
    expect(err.message).toContain(why);
  });

  it('refuses a capability outside the allow-list in a per-unit drop-in, and core-net beyond NET_ADMIN/NET_RAW', async () => {
    const drop = 'dropins/smolotchi-core-net.service.d/30-more.conf';
    const err = await refusal({ [drop]: '[Service]\nAmbientCapabilities=CAP_NET_ADMIN CAP_SYS_PTRACE\n' });
    expect(err.message).toContain(`packaging/systemd/${drop}:2: AmbientCapabilities=CAP_NET_ADMIN CAP_SYS_PTRACE refused: smolotchi-core-net.service may hold CAP_NET_ADMIN, CAP_NET_RAW`);
    // The web unit may hold none, even the ones core-net may.
    expect((await refusal({ 'dropins/smolotchi-web.service.d/30-x.conf': '[Service]\nCapabilityBoundingSet=CAP_NET_RAW\n' })).message).toContain('may hold no capabilities');
  });

  it('checks every unit it ships, opted in or not, and each shared drop-in where it applies', async () => {
    const off: UnitOptions = { display: false, coreNet: false, toolCommand: INSTALLED_TOOL };
    expect((await refusal({ 'smolotchi-display.service': '[Service]\nUser=root\n' }, off)).message).toContain('smolotchi-display.service:2');
    expect((await refusal({ 'dropins/16-extra.conf': '[Service]\nExecStartPre=+/bin/true\n' }, off)).message).toContain('dropins/16-extra.conf:2');
  });

  it('refuses a timer that starts a foreign service, foreign unit names and drop-ins read after the policy', async () => {
    expect((await refusal({ 'smolotchi-prune.timer': '[Timer]\nOnCalendar=hourly\nUnit=ssh.service\n' })).message).toContain('smolotchi-prune.timer:3');
    expect((await refusal({ 'getty@tty1.service': '[Service]\nExecStart=/bin/sh\n' })).message).toContain('names must match smolotchi-*');
    expect((await refusal({ 'dropins/zzz-last.conf': '[Service]\nUser=smolotchi\n' })).message).toContain('must sort before zz-smolotchi-policy.conf');
    expect((await refusal({ 'dropins/smolotchi-web.service.d/zz-smolotchi-policy.conf': '[Service]\n' })).message).toContain('reserved');
  });

  it('reads continuation lines as one directive, reported at its first line; checks every command of a ; list', async () => {
    const err = await refusal({ [WEB]: webWith('ExecStartPre=/bin/true \\\n  ; +/bin/sh') });
    expect(err.message).toContain('the + prefix');
    expect(err.message).toContain(`${WEB}:6`);
    expect(parseUnit('[Service]\nExecStart=/bin/a \\\n  b\n# c=d\n; e=f\n')).toEqual([{ section: 'Service', key: 'ExecStart', value: '/bin/a  b', line: 2 }]);
  });

  it('accepts the prefixes that grant nothing: - (ignore failure) and : (no expansion)', async () => {
    const r = await renderUnits(await appRelease({ [WEB]: webWith('ExecStartPre=-/bin/true\nExecStartPost=:/bin/echo $x') }), bundled, ALL);
    expect(renderedFile(r, WEB)).toContain('ExecStartPre=-/bin/true');
  });
});

describe('unit policy: the app-shaped layout keeps working', () => {
  it('renders every unit with the baseline first, the release drop-ins, and the policy drop-in last', async () => {
    const r = await renderUnits(await appRelease(), bundled, ALL);
    expect(r.source).toBe('release');
    for (const unit of ['smolotchi-core-net.service', 'smolotchi-web.service', 'smolotchi-ai.service', 'smolotchi-display.service', 'smolotchi-prune.service']) {
      const dropins = r.files.filter((f) => f.relPath.startsWith(`${unit}.d/`)).map((f) => path.basename(f.relPath)).sort();
      expect(dropins[0], unit).toBe('00-smolotchi-hardening.conf');
      expect(dropins.at(-1), unit).toBe('zz-smolotchi-policy.conf');
      expect(dropins, unit).toContain('10-hardening.conf');
      expect(dropins, unit).toContain('20-service-paths.conf');
      const policy = renderedFile(r, `${unit}.d/zz-smolotchi-policy.conf`)!;
      expect(policy).toMatch(/^User=smolotchi$/m);
      expect(policy).toMatch(/^NoNewPrivileges=yes$/m);
      expect(policy).toMatch(/^Environment=PYTHONSAFEPATH=1$/m);
    }
    // The prune-only drop-in stays the prune unit's.
    expect(renderedFile(r, 'smolotchi-prune.service.d/10-hardening-prune.conf')).toContain('PrivateNetwork=true');
    expect(renderedFile(r, 'smolotchi-web.service.d/10-hardening-prune.conf')).toBeUndefined();
  });

  it('grants core-net CAP_NET_ADMIN and CAP_NET_RAW, the web UI none', async () => {
    const r = await renderUnits(await appRelease(), bundled, ALL);
    const coreNet = renderedFile(r, 'smolotchi-core-net.service.d/zz-smolotchi-policy.conf')!;
    expect(coreNet).toContain('CapabilityBoundingSet=\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n');
    expect(coreNet).toContain('AmbientCapabilities=\nAmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW\n');
    const web = renderedFile(r, 'smolotchi-web.service.d/zz-smolotchi-policy.conf')!;
    expect(web).toContain('CapabilityBoundingSet=\nAmbientCapabilities=\n');
    const core = await renderUnits(await appRelease(), bundled, { ...ALL, coreNet: false });
    expect(renderedFile(core, 'smolotchi-core.service.d/zz-smolotchi-policy.conf')).toContain('AmbientCapabilities=\nAmbientCapabilities=CAP_NET_RAW\n');
  });

  it('reports what each unit loosened: the display its home, the services the private network', async () => {
    const r = await renderUnits(await appRelease(), bundled, ALL);
    expect(r.loosened['smolotchi-display.service']).toEqual(
      expect.arrayContaining([
        'ProtectHome=false (packaging/systemd/dropins/smolotchi-display.service.d/20-service-paths.conf:2)',
        'PrivateNetwork=false (packaging/systemd/dropins/smolotchi-display.service.d/20-service-paths.conf:3)',
      ]),
    );
    // read-only counts: the baseline hides /home entirely.
    expect(r.loosened['smolotchi-web.service']).toEqual([
      'ProtectHome=read-only (packaging/systemd/dropins/20-homedir-readonly.conf:2)',
      'PrivateNetwork=false (packaging/systemd/dropins/smolotchi-web.service.d/20-service-paths.conf:2)',
    ]);
    expect(r.loosened['smolotchi-prune.service']).toEqual(['ProtectHome=read-only (packaging/systemd/dropins/20-homedir-readonly.conf:2)']);
  });

  it('passes the bundled templates through the same policy', async () => {
    const r = await renderUnits(null, bundled, ALL);
    expect(renderedFile(r, 'smolotchi-core-net.service.d/zz-smolotchi-policy.conf')).toContain('AmbientCapabilities=CAP_NET_ADMIN\n');
    expect(r.loosened).toEqual({});
  });
});

// Opt-in: the policy against a real checkout of the app (SMOLOTCHI_APP_CHECKOUT=/path/to/smolotchi).
const checkout = process.env.SMOLOTCHI_APP_CHECKOUT;
const checkoutSkip = !checkout
  ? 'SMOLOTCHI_APP_CHECKOUT is not set (point it at a checkout of 161sam/smolotchi to run this)'
  : !existsSync(path.join(checkout, 'packaging', 'systemd'))
    ? `${checkout}/packaging/systemd does not exist`
    : null;
if (checkoutSkip) console.warn(`real app unit policy test skipped: ${checkoutSkip}`);

describe.skipIf(checkoutSkip !== null)('unit policy against a real app checkout', () => {
  it('renders its packaging/systemd with every unit opted in, and names what it loosens', async () => {
    const r = await renderUnits(checkout!, bundled, ALL);
    expect(r.source).toBe('release');
    expect(r.units).toEqual(expect.arrayContaining(['smolotchi-core-net.service', 'smolotchi-web.service', 'smolotchi-display.service']));
    expect(renderedFile(r, 'smolotchi-core-net.service.d/zz-smolotchi-policy.conf')).toMatch(/^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW$/m);
    expect(r.loosened['smolotchi-display.service']?.some((l) => l.startsWith('ProtectHome=false'))).toBe(true);
  });
});
