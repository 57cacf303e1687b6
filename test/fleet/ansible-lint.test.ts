import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { ANSIBLE_DIR } from '../../scripts/fleet.js';

// packaging/ansible must lint clean: ansible-lint (Debian's ansible-lint) and, with ansible-core
// alone, ansible-playbook --syntax-check of every playbook. CI installs both (.ci/run).
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

describe('fleet: the Ansible role and playbooks lint clean', () => {
  it.skipIf(!has('ansible-lint'))('ansible-lint (production profile) finds nothing', async () => {
    const r = await execa('ansible-lint', ['--offline', '--nocolor'], { cwd: ANSIBLE_DIR, env, reject: false, all: true, timeout: 300_000 });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toMatch(/Passed with production profile/);
  }, 300_000);

  it.skipIf(!has('ansible-playbook'))('every playbook passes ansible-playbook --syntax-check', async () => {
    const playbooks = readdirSync(path.join(ANSIBLE_DIR, 'playbooks')).filter((f) => f.endsWith('.yml'));
    expect(playbooks.sort()).toEqual(['bootstrap.yml', 'rollback.yml', 'rollout.yml', 'status.yml']);
    const r = await execa('ansible-playbook', ['--syntax-check', '-i', path.join(ANSIBLE_DIR, 'inventory', 'hosts.example.yml'), ...playbooks.map((p) => path.join('playbooks', p))], {
      cwd: ANSIBLE_DIR,
      env: { ...env, ANSIBLE_CONFIG: path.join(ANSIBLE_DIR, 'ansible.cfg') },
      reject: false,
      all: true,
      timeout: 120_000,
    });
    expect(r.exitCode, r.all).toBe(0);
  }, 120_000);
});
