/**
 * The fleet part of `npm run bench`: rolling a release out to 8 sandboxed devices with
 * packaging/ansible's rollout.yml in batches of 25% (ssh pipelining on, as its ansible.cfg sets),
 * against the sum of 8 single-device installs run directly on each device, in the same run.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { canRunFleet, startFleet, type Fleet } from '../scripts/fleet.js';
import { makeBenchRepo } from './bench-repo.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js');
const DEVICES = 8;
const SETTINGS = { smolotchi_release_settle_seconds: 2, smolotchi_release_start_timeout: 30, smolotchi_release_http_timeout: 10 };

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function play(fleet: Fleet, name: string, vars: Record<string, unknown>): Promise<void> {
  const r = await fleet.playbook(name, vars);
  if (r.exitCode !== 0) throw new Error(`${name}.yml failed (exit ${r.exitCode}):\n${r.output.slice(-3000)}`);
}

export async function fleetBench(write: (s: string) => void): Promise<void> {
  const can = canRunFleet();
  if (!can.ok) {
    write(`\nfleet bench (Ansible, ${DEVICES} sandboxed devices) skipped: ${can.reason}\n`);
    return;
  }
  const fleet = await startFleet(DEVICES);
  try {
    // Three releases of the same app (same requirements): 1.0.0 to start from, 1.1.0 installed
    // device by device, 1.2.0 rolled out by Ansible. Both are upgrades of the same kind.
    const repo = path.join(fleet.dir, 'work', 'repo');
    await makeBenchRepo('/usr/bin/python3', repo, ['1.0.0', '1.1.0', '1.2.0'].map((version) => ({ version })));
    const common = { smolotchi_release_cmd: `${process.execPath} ${CLI}`, smolotchi_release_source: repo };
    await play(fleet, 'bootstrap', { ...common, ...SETTINGS, smolotchi_release_install_method: 'none' });
    await play(fleet, 'rollout', { ...common, smolotchi_release_version: '1.0.0', smolotchi_release_canary: '100%' });

    let single = 0;
    for (const host of fleet.hosts) {
      const sb = await fleet.device(host);
      single += await timed(async () => {
        const r = await sb.exec([process.execPath, CLI, 'release', 'install', '1.1.0', '--quiet']);
        if (r.exitCode !== 0) throw new Error(`${host}: install 1.1.0: exit ${r.exitCode}\n${r.stderr}`);
      });
    }
    await fleet.closeConnections(); // the rollout pays for its own ssh logins
    const rollout = await timed(() =>
      play(fleet, 'rollout', { ...common, smolotchi_release_version: '1.2.0', smolotchi_release_canary: '25%', smolotchi_release_batch: '25%' }),
    );
    const ansible = (await execa('ansible', ['--version'], { reject: false })).stdout.split('\n')[0] ?? 'ansible';
    write(`\nfleet rollout: ${DEVICES} sandboxed devices (a real systemd each, ssh + sshd), ${ansible}, settle window ${SETTINGS.smolotchi_release_settle_seconds} s\n`);
    write(`${'operation'.padEnd(52)}${'time'.padStart(10)}\n`);
    write(`${`sum of ${DEVICES} single-device installs (run on each device)`.padEnd(52)}${`${(single / 1000).toFixed(1)} s`.padStart(10)}\n`);
    write(`${`rollout.yml, batches of 25% (${DEVICES / 4} devices), pipelining on`.padEnd(52)}${`${(rollout / 1000).toFixed(1)} s`.padStart(10)}\n`);
    write(`ratio rollout / sum of single installs: ${(rollout / single).toFixed(2)}x (< 1: the batches' parallelism pays for Ansible's overhead)\n`);
  } finally {
    await fleet.destroy();
  }
}
