import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { appInvocation } from '../../src/core/app-argv.js';
import { folderSpecs } from '../../src/core/bootstrap/folders.js';
import { makeLayout } from '../../src/core/layout.js';

describe('init folder table', () => {
  it('takes the tool state and lock folders from the layout: root-only when they are not inside the app\'s', () => {
    const layout = { ...makeLayout('/'), historyDb: '/var/lib/smolotchi/release/releases.db', lockFile: '/run/smolotchi-release/release.lock' };
    const specs = folderSpecs(layout);
    expect(specs).toContainEqual({ path: '/var/lib/smolotchi/release', owner: 'root', mode: 0o700 });
    expect(specs).toContainEqual({ path: '/run/smolotchi-release', owner: 'root', mode: 0o700 });
    // The app's state folder comes first: the tool's folder inside it is created after it.
    const at = (p: string) => specs.findIndex((s) => s.path === p);
    expect(at('/var/lib/smolotchi')).toBeLessThan(at('/var/lib/smolotchi/release'));
  });

  it('does not claim the app\'s folders for root (history in /var/lib/smolotchi, lock under /run/smolotchi)', () => {
    const specs = folderSpecs(makeLayout('/srv/root'));
    expect(specs.find((s) => s.path === '/srv/root/var/lib/smolotchi')).toEqual({ path: '/srv/root/var/lib/smolotchi', owner: 'service', mode: 0o750 });
    expect(specs.some((s) => s.path.startsWith(path.join('/srv/root', 'run')))).toBe(false);
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
