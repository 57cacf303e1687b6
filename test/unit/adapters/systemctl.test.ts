import { mkdtempSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { failedJobUnits, makeNoServiceManager, makeSystemd, parseShow, SystemdError } from '../../../src/adapters/systemctl.js';
import { ReleaseError } from '../../../src/core/errors.js';
import { makeFakeSystemctl, type FakeSystemctl } from '../../support/fake-systemctl.js';

let tmp: string;
let fake: FakeSystemctl;
beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'systemctl-'));
  fake = makeFakeSystemctl(tmp);
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('makeSystemd against the recording fake', () => {
  it('passes --no-ask-password and keeps unit names behind --', async () => {
    const sd = makeSystemd({ systemctl: fake.path });
    expect(sd.kind).toBe('systemd');
    await sd.daemonReload();
    await sd.restart(['smolotchi-core.service']);
    await sd.start('smolotchi-web.service');
    await sd.enable(['smolotchi-core.service', 'smolotchi-prune.timer']);
    await sd.stop(['smolotchi-display.service']);
    await sd.disable(['smolotchi-display.service']);
    // Nothing to do: no call at all.
    await sd.stop([]);
    await sd.enable([]);
    expect(fake.log()).toEqual([
      ['--no-ask-password', 'daemon-reload'],
      ['--no-ask-password', 'restart', '--', 'smolotchi-core.service'],
      ['--no-ask-password', 'start', '--', 'smolotchi-web.service'],
      ['--no-ask-password', 'enable', '--', 'smolotchi-core.service', 'smolotchi-prune.timer'],
      ['--no-ask-password', 'stop', '--', 'smolotchi-display.service'],
      ['--no-ask-password', 'disable', '--', 'smolotchi-display.service'],
    ]);
  });

  it('parses show output into a UnitState', async () => {
    const sd = makeSystemd({ systemctl: fake.path });
    expect(await sd.show('smolotchi-web.service')).toEqual({
      unit: 'smolotchi-web.service',
      loadState: 'loaded',
      activeState: 'active',
      subState: 'running',
      result: 'success',
      nRestarts: 0,
      mainPid: 4242,
      execMainStatus: null,
    });
    fake.setState('smolotchi-core.service', { ActiveState: 'activating', SubState: 'auto-restart', Result: 'exit-code', NRestarts: 3, MainPID: 0, ExecMainCode: 1, ExecMainStatus: 2 });
    expect(await sd.show('smolotchi-core.service')).toMatchObject({ activeState: 'activating', subState: 'auto-restart', result: 'exit-code', nRestarts: 3, mainPid: 0, execMainStatus: 2 });
    const call = fake.log().at(-1) ?? [];
    expect(call[1]).toMatch(/^--property=.*NRestarts/);
    expect(call.slice(2)).toEqual(['show', '--', 'smolotchi-core.service']);
  });

  it('asks for several units in one show call and keeps them apart, in the order asked', async () => {
    const sd = makeSystemd({ systemctl: fake.path });
    fake.setState('smolotchi-core.service', { ActiveState: 'activating', SubState: 'start', NRestarts: 2 });
    const states = await sd.showAll(['smolotchi-web.service', 'smolotchi-core.service', 'smolotchi-prune.timer']);
    expect(states.map((s) => [s.unit, s.activeState, s.nRestarts])).toEqual([
      ['smolotchi-web.service', 'active', 0],
      ['smolotchi-core.service', 'activating', 2],
      ['smolotchi-prune.timer', 'active', 0],
    ]);
    expect(fake.log()).toHaveLength(1);
    expect(fake.log()[0]!.slice(2)).toEqual(['show', '--', 'smolotchi-web.service', 'smolotchi-core.service', 'smolotchi-prune.timer']);
  });

  it('asks unit by unit when a combined answer does not name the units asked, in order', async () => {
    // A systemctl that answers records in another order than asked (never seen, but not guessed at either).
    const odd = path.join(tmp, 'odd-systemctl');
    await fs.writeFile(odd, `#!/bin/sh\nlast=; for a in "$@"; do last=$a; done\ncase "$*" in *' smolotchi-a.service smolotchi-b.service'*) printf 'Id=smolotchi-b.service\\nActiveState=failed\\n\\nId=smolotchi-a.service\\nActiveState=active\\n' ;; *) if [ "$last" = smolotchi-b.service ]; then printf 'ActiveState=failed\\n'; else printf 'ActiveState=active\\n'; fi ;; esac\n`, { mode: 0o755 });
    const sd = makeSystemd({ systemctl: odd });
    const states = await sd.showAll(['smolotchi-a.service', 'smolotchi-b.service']);
    expect(states.map((s) => [s.unit, s.activeState])).toEqual([
      ['smolotchi-a.service', 'active'],
      ['smolotchi-b.service', 'failed'],
    ]);
  });

  it('turns a failed restart into a ReleaseError naming the unit and the reason', async () => {
    fake.setState('smolotchi-web.service', { failRestart: true });
    const sd = makeSystemd({ systemctl: fake.path });
    const err = await sd.restart(['smolotchi-web.service']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReleaseError);
    const message = (err as Error).message;
    expect(message).toContain('systemctl restart smolotchi-web.service');
    expect(message).toContain('Job for smolotchi-web.service failed because the control process exited with error code.');
    expect((err as SystemdError).failedUnits).toEqual(['smolotchi-web.service']);
    await expect(sd.restart(['smolotchi-core.service'])).resolves.toBeUndefined();
  });

  it('restarts several units in one call and names each whose job failed, not the others', async () => {
    fake.setState('smolotchi-ai.service', { failRestart: true });
    fake.setState('smolotchi-web.service', { failRestart: true });
    const sd = makeSystemd({ systemctl: fake.path });
    const units = ['smolotchi-core.service', 'smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-prune.timer'];
    const err = await sd.restart(units).catch((e: unknown) => e);
    // Asked why (not the start limit), so neither reset nor retried.
    expect(fake.log()).toEqual([
      ['--no-ask-password', 'restart', '--', ...units],
      ['--no-ask-password', '--property=Id,Result', 'show', '--', 'smolotchi-ai.service', 'smolotchi-web.service'],
    ]);
    expect((err as SystemdError).environmental).toBe(false);
    expect((err as SystemdError).failedUnits).toEqual(['smolotchi-ai.service', 'smolotchi-web.service']);
    await expect(sd.restart([])).resolves.toBeUndefined();
    expect(fake.log()).toHaveLength(2);
  });

  describe('a restart systemd refused for the start limit', () => {
    const units = ['smolotchi-core.service', 'smolotchi-web.service', 'smolotchi-prune.timer'];
    const restartCalls = () => fake.log().filter((c) => c.includes('restart') || c.includes('reset-failed'));
    /** The calls of one refused (re)start: the whole call, the units asked why, then the refused one reset and tried once more. */
    const retryCalls = (asked: string[], refused: string, verb = 'restart', call = units) => [
      ['--no-ask-password', verb, '--', ...call],
      ['--no-ask-password', '--property=Id,Result', 'show', '--', ...asked],
      ['--no-ask-password', 'reset-failed', '--', refused],
      ['--no-ask-password', verb, '--', refused],
    ];
    /** The adapter over the fake, with what it warns about collected. */
    const warnedSystemd = () => {
      const warnings: string[] = [];
      return { sd: makeSystemd({ systemctl: fake.path, onWarn: (m) => warnings.push(m) }), warnings };
    };

    it('resets exactly the refused unit, restarts it once more, and says so', async () => {
      fake.setState('smolotchi-web.service', { startLimitHit: true });
      const { sd, warnings } = warnedSystemd();
      await expect(sd.restart(units)).resolves.toBeUndefined();
      expect(fake.log()).toEqual(retryCalls(['smolotchi-web.service'], 'smolotchi-web.service'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/start limit hit for smolotchi-web\.service\b.*reset/);
      // Its limit reset, the next restart is one call again, and nothing more is said.
      await sd.restart(units);
      expect(fake.log().slice(4)).toEqual([['--no-ask-password', 'restart', '--', ...units]]);
      expect(warnings).toHaveLength(1);
    });

    it('a timer refused for its start limit, which systemctl does not name ("Job failed."), is found by asking the whole call', async () => {
      fake.setState('smolotchi-prune.timer', { startLimitHit: true });
      const { sd, warnings } = warnedSystemd();
      await expect(sd.restart(units)).resolves.toBeUndefined();
      expect(fake.log()).toEqual(retryCalls(units, 'smolotchi-prune.timer'));
      expect(warnings[0]).toMatch(/start limit hit for smolotchi-prune\.timer\b/);
      // A timer's job failing otherwise is reported as it came, never retried.
      fake.setState('smolotchi-prune.timer', { failRestart: true });
      const err = await sd.restart(units).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SystemdError);
      expect((err as Error).message).toContain('Job failed.');
      expect(restartCalls().slice(3)).toEqual([['--no-ask-password', 'restart', '--', ...units]]);
    });

    it('a start (putting units back after a failed data snapshot) is reset and started once more too', async () => {
      fake.setState('smolotchi-web.service', { startLimitHit: true });
      const { sd, warnings } = warnedSystemd();
      await expect(sd.start('smolotchi-web.service')).resolves.toBeUndefined();
      expect(fake.log()).toEqual(retryCalls(['smolotchi-web.service'], 'smolotchi-web.service', 'start', ['smolotchi-web.service']));
      expect(warnings).toEqual([expect.stringMatching(/start limit hit for smolotchi-web\.service\b.*starting once more$/)]);
      // A start that fails otherwise is reported as it came.
      fake.setState('smolotchi-web.service', { failRestart: true });
      await expect(sd.start('smolotchi-web.service')).rejects.toBeInstanceOf(SystemdError);
      expect(fake.log().slice(4).filter((c) => c.includes('reset-failed'))).toEqual([]);
    });

    it('a successful restart stays exactly one systemctl call', async () => {
      const sd = makeSystemd({ systemctl: fake.path, onWarn: () => expect.unreachable() });
      await sd.restart(units);
      expect(fake.log()).toEqual([['--no-ask-password', 'restart', '--', ...units]]);
    });

    it('a retry that fails again throws the SystemdError naming the unit', async () => {
      // Reset, restarted once more, and then the unit fails on its own.
      fake.setState('smolotchi-web.service', { startLimitHit: true, failRestart: true });
      const sd = makeSystemd({ systemctl: fake.path });
      const err = await sd.restart(units).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SystemdError);
      expect((err as SystemdError).environmental).toBe(false);
      expect((err as SystemdError).failedUnits).toEqual(['smolotchi-web.service']);
      expect((err as Error).message).toContain('Job for smolotchi-web.service failed because the control process exited with error code.');
      expect(restartCalls()).toEqual([
        ['--no-ask-password', 'restart', '--', ...units],
        ['--no-ask-password', 'reset-failed', '--', 'smolotchi-web.service'],
        ['--no-ask-password', 'restart', '--', 'smolotchi-web.service'],
      ]);
    });

    it('is not retried when another unit of the call failed otherwise, nor when systemd cannot say why', async () => {
      fake.setState('smolotchi-web.service', { startLimitHit: true });
      fake.setState('smolotchi-core.service', { failRestart: true });
      const sd = makeSystemd({ systemctl: fake.path, onWarn: () => expect.unreachable() });
      const mixed = await sd.restart(units).catch((e: unknown) => e);
      expect((mixed as SystemdError).failedUnits).toEqual(['smolotchi-core.service', 'smolotchi-web.service']);
      expect(restartCalls()).toEqual([['--no-ask-password', 'restart', '--', ...units]]);

      // The Result cannot be read (the bus went away): the refusal is reported as it came.
      fake.setState('smolotchi-core.service', { failRestart: false });
      fake.setState('smolotchi-web.service', { busDownShows: 1 });
      const unknown = await sd.restart(units).catch((e: unknown) => e);
      expect((unknown as SystemdError).failedUnits).toEqual(['smolotchi-web.service']);
      expect((unknown as Error).message).toContain('start of the service was attempted too often');
      expect(restartCalls().filter((c) => c.includes('reset-failed'))).toEqual([]);
    });
  });

  it("reads the failed units from systemctl's own words (a failed job, a missing unit)", () => {
    const stderr = [
      'Job for smolotchi-core.service failed because the control process exited with error code.',
      'See "systemctl status smolotchi-core.service" and "journalctl -xeu smolotchi-core.service" for details.',
      'Failed to restart smolotchi-gone.service: Unit smolotchi-gone.service not found.',
      'Job for smolotchi-core.service failed because a timeout was exceeded.',
    ].join('\n');
    expect(failedJobUnits(stderr)).toEqual(['smolotchi-core.service', 'smolotchi-gone.service']);
    expect(failedJobUnits('Failed to connect to bus: No such file or directory\n')).toEqual([]);
  });

  it('reports a missing systemctl as a ReleaseError and a missing journalctl as no lines', async () => {
    const sd = makeSystemd({ systemctl: path.join(tmp, 'no-such-systemctl'), journalctl: path.join(tmp, 'no-such-journalctl') });
    await expect(sd.daemonReload()).rejects.toBeInstanceOf(ReleaseError);
    expect(await sd.journal('smolotchi-web.service', 20)).toEqual([]);
  });

  it('reads journal lines through journalctl', async () => {
    const journalctl = path.join(tmp, 'journalctl');
    await fs.writeFile(journalctl, '#!/bin/sh\nprintf "%s\\n" "$@"\n', { mode: 0o755 });
    const sd = makeSystemd({ systemctl: fake.path, journalctl });
    expect(await sd.journal('smolotchi-web.service', 5)).toEqual(['--no-pager', '--quiet', '--output=cat', '--lines=5', '--unit=smolotchi-web.service']);
  });
});

describe('parseShow', () => {
  it('defaults what systemctl did not print and keeps values containing =', () => {
    expect(parseShow('x.service', 'LoadState=not-found\nActiveState=inactive\nResult=a=b\n')).toEqual({
      unit: 'x.service',
      loadState: 'not-found',
      activeState: 'inactive',
      subState: 'unknown',
      result: 'a=b',
      nRestarts: 0,
      mainPid: 0,
      execMainStatus: null,
    });
  });
});

describe('makeNoServiceManager', () => {
  it('does nothing and says why', async () => {
    const none = makeNoServiceManager('--root is not /');
    expect(none.kind).toBe('none');
    expect(none.reason).toBe('--root is not /');
    await none.restart(['smolotchi-core.service']);
    await none.tmpfilesCreate('/nonexistent');
    expect(await none.journal('smolotchi-core.service', 10)).toEqual([]);
    expect((await none.show('smolotchi-core.service')).activeState).toBe('unknown');
  });
});
