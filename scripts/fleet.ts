import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT, attachSandbox, baseDir, canRunSandbox, requirableCheck, sandboxScriptEnv, type Sandbox, type SandboxCheck } from './systemd-sandbox.js';

/**
 * A fleet of sandboxed devices (scripts/fleet-sandbox.sh: one real systemd per device, reached by
 * the real ssh client and sshd) and the project's playbooks run against it with ansible-playbook,
 * for the fleet tests and the fleet bench.
 */

const FLEET_SCRIPT = path.join(REPO_ROOT, 'scripts', 'fleet-sandbox.sh');
export const ANSIBLE_DIR = path.join(REPO_ROOT, 'packaging', 'ansible');
const SSHD = '/usr/sbin/sshd';

/** Whether this machine can run a fleet (root, a bootable sandbox, ansible, sshd), and if not, why. */
export const canRunFleet = requirableCheck('the fleet sandbox', probe);

function probe(): SandboxCheck {
  const sandbox = canRunSandbox();
  if (!sandbox.ok) return sandbox;
  for (const tool of ['ansible-playbook', 'ssh', 'ssh-keygen']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return { ok: false, reason: `needs ${tool} (apt-get install ansible-core openssh-client)` };
  }
  if (!existsSync(SSHD)) return { ok: false, reason: `needs ${SSHD} (apt-get install openssh-server)` };
  return { ok: true };
}

/** Per host, the counters of ansible-playbook's PLAY RECAP. */
export type Recap = Record<string, { ok: number; changed: number; unreachable: number; failed: number; skipped: number }>;

export interface PlaybookRun {
  exitCode: number;
  /** stdout and stderr together, in order: what an operator sees. */
  output: string;
  recap: Recap;
}

export function parseRecap(output: string): Recap {
  const recap: Recap = {};
  const at = output.lastIndexOf('PLAY RECAP');
  if (at < 0) return recap;
  for (const line of output.slice(at).split('\n').slice(1)) {
    const m = /^(\S+)\s*:\s*(.*)$/.exec(line.trim());
    if (!m) continue;
    const n = (key: string) => Number(new RegExp(`\\b${key}=(\\d+)`).exec(m[2]!)?.[1] ?? 0);
    recap[m[1]!] = { ok: n('ok'), changed: n('changed'), unreachable: n('unreachable'), failed: n('failed'), skipped: n('skipped') };
  }
  return recap;
}

export interface Fleet {
  dir: string;
  inventory: string;
  hosts: string[];
  /** The device `host` (dev1, ...), attached now (attach again after it was stopped and booted). */
  device(host: string): Promise<Sandbox>;
  /** Run playbooks/<name>.yml on the fleet's inventory with these extra variables. */
  playbook(name: string, vars: Record<string, unknown>): Promise<PlaybookRun>;
  /** Boot every device that is not running (a stopped device keeps its private folders). */
  up(): Promise<void>;
  /** Stop one device, as if its power were cut. */
  stopDevice(host: string): Promise<void>;
  /** Close Ansible's persistent ssh connections, so the next play logs in afresh. */
  closeConnections(): Promise<void>;
  /** Stop every device and delete the fleet's folder. */
  destroy(): Promise<void>;
}

async function fleetSandbox(args: string[]): Promise<string> {
  const r = await execa('bash', [FLEET_SCRIPT, ...args], { env: sandboxScriptEnv(), reject: false, timeout: 600_000 });
  if (r.exitCode !== 0) throw new Error(`fleet-sandbox ${args.join(' ')} failed (exit ${r.exitCode}): ${r.stderr}`);
  return r.stdout.trim();
}

/** Boot `n` devices dev1..devN in a fresh folder. */
export async function startFleet(n: number): Promise<Fleet> {
  const dir = await fs.mkdtemp(path.join(baseDir(), 'smolotchi-fleet-'));
  const hosts = Array.from({ length: n }, (_, i) => `dev${i + 1}`);
  const inventory = await fleetSandbox(['up', String(n), dir]).catch(async (err) => {
    await fleetSandbox(['down', dir, '--purge']).catch(() => undefined);
    throw err;
  });
  process.once('exit', () => spawnSync('bash', [FLEET_SCRIPT, 'down', dir], { timeout: 30_000, env: sandboxScriptEnv() }));
  return {
    dir,
    inventory,
    hosts,
    device: (host) => attachSandbox(path.join(dir, host)),
    async playbook(name, vars) {
      const r = await execa('ansible-playbook', ['-i', inventory, path.join(ANSIBLE_DIR, 'playbooks', `${name}.yml`), '-e', JSON.stringify(vars)], {
        // The ProxyCommand enters each device with nsenter --wd=$PWD: a folder every device sees.
        cwd: dir,
        all: true,
        reject: false,
        timeout: 600_000,
        env: {
          ANSIBLE_CONFIG: path.join(ANSIBLE_DIR, 'ansible.cfg'),
          ANSIBLE_HOME: path.join(dir, '.ansible'),
          ANSIBLE_LOCAL_TEMP: path.join(dir, '.ansible', 'tmp'),
          ANSIBLE_NOCOLOR: '1',
          ANSIBLE_FORCE_COLOR: '0',
          ANSIBLE_STDOUT_CALLBACK: 'default',
        },
      });
      const output = String(r.all ?? '');
      return { exitCode: r.exitCode ?? 128, output, recap: parseRecap(output) };
    },
    up: async () => void (await fleetSandbox(['up', String(n), dir])),
    stopDevice: async (host) => (await attachSandbox(path.join(dir, host))).stop(),
    async closeConnections() {
      for (const socket of await fs.readdir(path.join(dir, 'cp')).catch(() => [])) {
        await execa('ssh', ['-F', '/dev/null', '-o', `ControlPath=${path.join(dir, 'cp', socket)}`, '-O', 'exit', 'fleet-device'], { reject: false });
      }
    },
    async destroy() {
      await fleetSandbox(['down', dir, ...(process.env.SMOLOTCHI_E2E_KEEP === '1' ? [] : ['--purge'])]);
    },
  };
}
