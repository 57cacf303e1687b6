import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { ANSIBLE_DIR } from '../../scripts/fleet.js';
import { HANG_GUARD_MS } from '../support/cli.js';

// packaging/ansible without devices: it lints clean (Debian's ansible-lint, and
// ansible-playbook --syntax-check of every playbook), and hostile variables are refused on the
// controller before any host is contacted. CI installs both tools (.ci/run).
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const required = process.env.SMOLOTCHI_E2E === 'require';
for (const tool of ['ansible-lint', 'ansible-playbook']) {
  if (!has(tool)) {
    if (required) throw new Error(`SMOLOTCHI_E2E=require but ${tool} is not installed (apt-get install ${tool === 'ansible-lint' ? 'ansible-lint' : 'ansible-core'})`);
    console.warn(`fleet lint: ${tool} not installed (apt-get install ${tool === 'ansible-lint' ? 'ansible-lint' : 'ansible-core'}): its check is skipped`);
  }
}

// Both tools keep caches in $HOME; keep them out of the developer's.
const home = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-ansible-lint-'));
const env = { HOME: home, XDG_CACHE_HOME: path.join(home, '.cache'), ANSIBLE_HOME: path.join(home, '.ansible'), ANSIBLE_NOCOLOR: '1', NO_COLOR: '1' };
afterAll(() => rmSync(home, { recursive: true, force: true }));

/** ansible-playbook in packaging/ansible with its ansible.cfg; stdout and stderr together. */
async function ansiblePlaybook(args: string[]): Promise<{ exitCode: number; all: string }> {
  const r = await execa('ansible-playbook', args, {
    cwd: ANSIBLE_DIR,
    env: { ...env, ANSIBLE_CONFIG: path.join(ANSIBLE_DIR, 'ansible.cfg') },
    reject: false,
    all: true,
    timeout: HANG_GUARD_MS,
  });
  return { exitCode: r.exitCode ?? 128, all: String(r.all) };
}

describe('fleet: the Ansible role and playbooks, without devices', () => {
  it.skipIf(!has('ansible-lint'))('ansible-lint (production profile) finds nothing', async () => {
    const r = await execa('ansible-lint', ['--offline', '--nocolor'], { cwd: ANSIBLE_DIR, env, reject: false, all: true, timeout: HANG_GUARD_MS });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toMatch(/Passed with production profile/);
  });

  it.skipIf(!has('ansible-playbook'))('every playbook passes ansible-playbook --syntax-check', async () => {
    const playbooks = readdirSync(path.join(ANSIBLE_DIR, 'playbooks')).filter((f) => f.endsWith('.yml'));
    expect(playbooks.sort()).toEqual(['bootstrap.yml', 'rollback.yml', 'rollout.yml', 'status.yml']);
    const r = await ansiblePlaybook(['--syntax-check', '-i', path.join(ANSIBLE_DIR, 'inventory', 'hosts.example.yml'), ...playbooks.map((p) => path.join('playbooks', p))]);
    expect(r.exitCode, r.all).toBe(0);
  });

  // A host that cannot exist: any attempt to contact it would show up as UNREACHABLE.
  const refused = async (playbook: string, vars: Record<string, unknown>) => {
    const r = await ansiblePlaybook(['-i', 'nohost.invalid,', path.join('playbooks', playbook), '-e', JSON.stringify(vars)]);
    expect(r.exitCode, r.all).toBe(2);
    expect(r.all).not.toMatch(/UNREACHABLE/);
    return r.all;
  };

  it.skipIf(!has('ansible-playbook'))('refuses a version that is not X.Y.Z (it becomes a file name) before contacting a host', async () => {
    for (const version of ['../../../etc/shadow', '1.0']) {
      const out = await refused('rollout.yml', { smolotchi_release_version: version, smolotchi_release_artifacts: '/nonexistent' });
      expect(out).toContain('smolotchi_release_version must be a release version X.Y.Z');
    }
    const out = await refused('rollback.yml', { smolotchi_release_rollback_to: '../1.0.0' });
    expect(out).toContain('smolotchi_release_rollback_to must be a release version X.Y.Z');
  });

  it.skipIf(!has('ansible-playbook'))('refuses env settings that would smuggle in another line, and missing artifacts', async () => {
    const smuggled = await refused('bootstrap.yml', { smolotchi_release_install_method: 'none', smolotchi_release_settle_seconds: '1\nSMOLOTCHI_RELEASE_SOURCE=/tmp/evil' });
    expect(smuggled).toContain('values are single lines');
    const badKey = await refused('bootstrap.yml', { smolotchi_release_install_method: 'none', smolotchi_release_env_extra: { 'X=Y\nZ': '1' } });
    expect(badKey).toContain('keys are upper-case names');
    const missing = await refused('rollout.yml', { smolotchi_release_version: '9.9.9', smolotchi_release_artifacts: ANSIBLE_DIR });
    expect(missing).toContain('smolotchi-9.9.9.tar.gz');
  });
});
