import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { filesFirst, passwdEntry, resolveServiceIdentity, runAsService, TEST_SERVICE_USER_ENV } from '../../../src/adapters/service-user.js';

const isRoot = process.getuid?.() === 0;

describe('the service user read from /etc/passwd', () => {
  it('takes the one well-formed line naming the user', () => {
    const passwd = 'root:x:0:0:root:/root:/bin/bash\nsmolotchi:x:998:997::/var/lib/smolotchi:/usr/sbin/nologin\nsmolotchix:x:5:5::/:/bin/sh\n';
    expect(passwdEntry(passwd, 'smolotchi')).toEqual({ uid: 998, gid: 997 });
  });

  it('reports uid 0 as it is: the caller refuses it, as it refuses getent\'s answer', () => {
    expect(passwdEntry('smolotchi:x:0:0::/:/bin/sh\n', 'smolotchi')).toEqual({ uid: 0, gid: 0 });
  });

  it.each([
    ['no line names it', 'root:x:0:0:root:/root:/bin/bash\n'],
    ['a prefix is not the name', 'smolotchi2:x:5:5::/:/bin/sh\n'],
    ['two lines name it', 'smolotchi:x:998:997::/:/bin/sh\nsmolotchi:x:0:0::/:/bin/sh\n'],
    ['a line with leading blanks names it too', ' smolotchi:x:0:0::/:/bin/sh\nsmolotchi:x:998:997::/:/bin/sh\n'],
    ['too few fields', 'smolotchi:x:998:997\n'],
    ['too many fields', 'smolotchi:x:998:997::/:/bin/sh:extra\n'],
    ['a uid that is not decimal', 'smolotchi:x:0x10:997::/:/bin/sh\n'],
    ['a blank uid', 'smolotchi:x::997::/:/bin/sh\n'],
    ['a uid with a blank', 'smolotchi:x: 998:997::/:/bin/sh\n'],
    ['a negative uid', 'smolotchi:x:-1:997::/:/bin/sh\n'],
    ['a leading zero', 'smolotchi:x:0998:997::/:/bin/sh\n'],
    ['the "no id" value', 'smolotchi:x:4294967295:997::/:/bin/sh\n'],
    ['a gid out of range', 'smolotchi:x:998:99999999999::/:/bin/sh\n'],
  ])('leaves the answer to getent when %s', (_why, passwd) => {
    expect(passwdEntry(passwd, 'smolotchi')).toBeNull();
  });

  it('trusts the file only when nsswitch.conf asks it first and its hit is final', () => {
    expect(filesFirst('passwd:         files systemd\ngroup: files\n')).toBe(true);
    expect(filesFirst('passwd: files # comment\n')).toBe(true);
    expect(filesFirst(null)).toBe(false);
    expect(filesFirst('group: files\n')).toBe(false);
    expect(filesFirst('passwd: ldap files\n')).toBe(false);
    expect(filesFirst('passwd: systemd files\n')).toBe(false);
    expect(filesFirst('passwd: compat\n')).toBe(false);
    expect(filesFirst('passwd: files [SUCCESS=continue] ldap\n')).toBe(false);
    expect(filesFirst('passwd: files\npasswd: ldap\n')).toBe(false);
    expect(filesFirst('# passwd: ldap\npasswd: files\n')).toBe(true);
  });
});

describe.runIf(isRoot)('the service identity as root', () => {
  it('finds a user with the ids getent gives', () => {
    const id = resolveServiceIdentity({ deviceRoot: false, env: { [TEST_SERVICE_USER_ENV]: 'nobody' } });
    const [, , uid, gid] = execFileSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).trim().split(':');
    expect(id).toMatchObject({ name: 'nobody', uid: Number(uid), gid: Number(gid), switched: true });
  });

  it('never switches to a user whose line names uid 0', () => {
    expect(() => resolveServiceIdentity({ deviceRoot: false, env: { [TEST_SERVICE_USER_ENV]: 'root' } })).toThrow(/no such user \(or it is root\)/);
  });

  it('still refuses a user no database knows', () => {
    expect(() => resolveServiceIdentity({ deviceRoot: false, env: { [TEST_SERVICE_USER_ENV]: 'no-such-user-here' } })).toThrow(/no such user/);
  });

  // Hostile: folder names that look like options or hold blanks are still only folders to mount.
  it('shows folders read-only to the service user, however they are named, and only those', async () => {
    const as = resolveServiceIdentity({ deviceRoot: false, env: { [TEST_SERVICE_USER_ENV]: 'nobody' } });
    const work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-ro-'));
    try {
      const [locked, open] = [path.join(work, '-o rw,remount'), path.join(work, 'open')];
      for (const dir of [locked, open]) {
        mkdirSync(dir);
        chmodSync(dir, 0o777);
      }
      chmodSync(work, 0o755);
      const write = (dir: string) => `open(${JSON.stringify(path.join(dir, 'f'))}, "w").write("x")`;
      const ro = await runAsService('/usr/bin/python3', ['-c', `${write(open)}\n${write(locked)}`], { as, readOnly: [locked] });
      expect(ro.exitCode).not.toBe(0);
      expect(ro.stderr).toContain('Read-only file system');
      expect(existsSync(path.join(open, 'f'))).toBe(true);
      expect(existsSync(path.join(locked, 'f'))).toBe(false);
      // Outside the process nothing changed: root (and the next process) still write there.
      const rw = await runAsService('/usr/bin/python3', ['-c', write(locked)], { as });
      expect(rw.exitCode, rw.stderr).toBe(0);
      await expect(runAsService('/bin/true', [], { as, readOnly: ['relative'] })).rejects.toThrow(/absolute paths/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
