import { describe, expect, it } from 'vitest';
import { appInvocation } from '../../../../src/core/app/app-argv.js';
import { folderSpecs } from '../../../../src/core/bootstrap/folders.js';
import { makeLayout } from '../../../../src/core/layout.js';

describe('init folder table', () => {
  it("makes the tool's state and lock folders root-only, after the app's state folder they sit in", () => {
    const specs = folderSpecs(makeLayout('/srv/root'));
    expect(specs).toContainEqual({ path: '/srv/root/var/lib/smolotchi', owner: 'service', mode: 0o750 });
    expect(specs).toContainEqual({ path: '/srv/root/var/lib/smolotchi/release', owner: 'root', mode: 0o700 });
    expect(specs).toContainEqual({ path: '/srv/root/run/smolotchi-release', owner: 'root', mode: 0o700 });
    const at = (p: string) => specs.findIndex((s) => s.path === p);
    expect(at('/srv/root/var/lib/smolotchi')).toBeLessThan(at('/srv/root/var/lib/smolotchi/release'));
    // /run/smolotchi is the app's (tmpfiles.d makes it at boot): not init's to claim.
    expect(specs.some((s) => s.path.startsWith('/srv/root/run/smolotchi/') || s.path === '/srv/root/run/smolotchi')).toBe(false);
  });
});

describe('which words are the app\'s', () => {
  it('passes every command but release and help, with only --root before it', () => {
    expect(appInvocation(['status'])).toEqual({ root: undefined, argv: ['status'] });
    expect(appInvocation(['--root', '/x', 'db', 'migrate', '--root', '/y'])).toEqual({ root: '/x', argv: ['db', 'migrate', '--root', '/y'] });
    expect(appInvocation(['--root=/x', 'ai'])).toEqual({ root: '/x', argv: ['ai'] });
    for (const ours of [['release', 'status'], ['help'], ['--help'], ['-V'], ['--json', 'status'], ['--root', '/x']]) expect(appInvocation(ours)).toBeNull();
  });
});
