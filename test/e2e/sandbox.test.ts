import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxAvailable, startSandbox, type Sandbox } from '../support/sandbox.js';

// The harness itself: a booted systemd that starts a hand-written unit as the smolotchi user,
// with private /tmp and /run, and that leaves the host's cgroups alone once stopped.
const available = sandboxAvailable();

describe.skipIf(!available)('systemd sandbox harness', () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox();
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it('boots systemd as PID 1 and runs a unit as smolotchi', async () => {
    expect((await sb.exec(['cat', '/proc/1/comm'])).stdout.trim()).toBe('systemd');
    const unit = '[Unit]\nDescription=hand-written\n[Service]\nExecStart=/bin/sleep infinity\nUser=smolotchi\n';
    await fs.writeFile(sb.fsPath('/etc/systemd/system/hello.service'), unit);
    expect((await sb.exec(['systemctl', 'daemon-reload'])).exitCode).toBe(0);
    expect((await sb.exec(['systemctl', 'start', 'hello.service'])).exitCode).toBe(0);
    expect((await sb.exec(['systemctl', 'is-active', 'hello.service'])).stdout.trim()).toBe('active');
    const pid = (await sb.exec(['systemctl', 'show', '-p', 'MainPID', '--value', 'hello.service'])).stdout.trim();
    const status = await fs.readFile(sb.fsPath(`/proc/${pid}/status`), 'utf8');
    const uid = (await sb.exec(['id', '-u', 'smolotchi'])).stdout.trim();
    expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s`, 'm'));
    expect((await sb.exec(['systemd-analyze', 'verify', '/etc/systemd/system/hello.service'])).exitCode).toBe(0);
    expect((await sb.exec(['systemctl', 'stop', 'hello.service'])).exitCode).toBe(0);
    expect((await sb.exec(['systemctl', 'is-active', 'hello.service'])).stdout.trim()).toBe('inactive');
  });

  it('keeps /tmp, /var/tmp and /run private, the checkout and the work folder visible', async () => {
    await sb.exec(['touch', '/tmp/inside-only']);
    await expect(fs.stat('/tmp/inside-only')).rejects.toThrow();
    for (const dir of ['/tmp', '/var/tmp']) {
      expect((await sb.exec(['findmnt', '-n', '-o', 'FSTYPE', dir])).stdout.trim(), dir).toBe('tmpfs');
    }
    expect((await sb.exec(['test', '-f', `${process.cwd()}/package.json`])).exitCode).toBe(0);
    await fs.writeFile(`${sb.workDir}/marker`, 'x');
    expect((await sb.exec(['cat', `${sb.workDir}/marker`])).stdout).toBe('x');
  });

  it('runs commands with the given cwd and env, and reports their exit code', async () => {
    const r = await sb.exec(['sh', '-c', 'pwd; echo "$FOO"; exit 7'], { cwd: '/etc/smolotchi', env: { FOO: 'bar' } });
    expect(r).toMatchObject({ exitCode: 7, stdout: '/etc/smolotchi\nbar' });
  });
});
