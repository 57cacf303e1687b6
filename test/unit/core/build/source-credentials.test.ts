import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { splitSourceCredentials } from '../../../../src/core/build/source-credentials.js';
import { ReleaseError } from '../../../../src/core/errors.js';

describe('splitSourceCredentials', () => {
  it('takes user and password off an http(s) URL, decoded, for that protocol and host only', () => {
    const { url, auth } = splitSourceCredentials('https://deploy:p%40ss%3Aw0rd@git.example.org:8443/team/app.git');
    expect(url).toBe('https://git.example.org:8443/team/app.git');
    expect({ ...auth }).toEqual({ protocol: 'https', host: 'git.example.org:8443', username: 'deploy', password: 'p@ss:w0rd' });
  });

  it('a token alone is the user name; an unencoded @ in the password ends at the last @', () => {
    expect({ ...splitSourceCredentials('HTTP://ghp_T0ken@github.com/o/r.git').auth }).toEqual({ protocol: 'http', host: 'github.com', username: 'ghp_T0ken', password: '' });
    const raw = splitSourceCredentials('https://me:a@b@host/r.git');
    expect(raw.url).toBe('https://host/r.git');
    expect(raw.auth?.password).toBe('a@b');
  });

  it('leaves sources without credentials, ssh logins and paths as they are', () => {
    for (const source of ['https://host/r.git', 'https://host/r.git?x=a@b', 'ssh://git@host/r.git', 'git@host:r.git', '/srv/git/app', 'file:///srv/a@b']) {
      expect(splitSourceCredentials(source)).toEqual({ url: source, auth: null });
    }
    expect(splitSourceCredentials('https://@host/r.git')).toEqual({ url: 'https://host/r.git', auth: null });
  });

  it('refuses bad percent-encoding and control characters (a line break would forge lines of git\'s credential protocol), never echoing them', () => {
    for (const source of ['https://u:%zzsecret@host/r.git', 'https://u:secret%0Ahost=evil@host/r.git', 'https://u%00:secret@host/r.git']) {
      let err: unknown;
      try {
        splitSourceCredentials(source);
      } catch (e) {
        err = e;
      }
      expect(err, source).toBeInstanceOf(ReleaseError);
      expect((err as ReleaseError).exitCode).toBe(2);
      expect((err as Error).message).not.toContain('secret');
      expect((err as Error).message).toContain('https://host/r.git');
    }
  });

  it('the credentials drop out of JSON and print as a placeholder', () => {
    const { auth } = splitSourceCredentials('https://deploy:hunter2@host/r.git');
    expect(JSON.stringify({ source: 'https://host/r.git', auth })).toBe('{"source":"https://host/r.git"}');
    expect(inspect({ auth })).not.toContain('hunter2');
  });
});
