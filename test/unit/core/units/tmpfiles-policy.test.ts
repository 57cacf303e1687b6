import { describe, expect, it } from 'vitest';
import { checkTmpfilesLine, composeTmpfiles } from '../../../../src/core/units/tmpfiles-policy.js';

describe('tmpfiles policy for release lines (systemd-tmpfiles runs them as root)', () => {
  it.each([
    ['d /run/smolotchi        0775 smolotchi smolotchi -', 'd /run/smolotchi 0775 smolotchi smolotchi -'],
    ['d /var/lib/smolotchi/artifacts 0750 smolotchi smolotchi', 'd /var/lib/smolotchi/artifacts 0750 smolotchi smolotchi -'],
    ['f /var/log/smolotchi/app.log 0640 smolotchi - - -', 'f /var/log/smolotchi/app.log 0640 smolotchi - -'],
    ['z /var/lib/smolotchi 0775 smolotchi smolotchi', 'z /var/lib/smolotchi 0775 smolotchi smolotchi -'],
    ['d! /run/smolotchi/cache 700 smolotchi smolotchi -', 'd! /run/smolotchi/cache 700 smolotchi smolotchi -'],
  ])('accepts the app\'s own folders: %s', (line, normalized) => {
    expect(checkTmpfilesLine(line, 'test')).toBe(normalized);
  });

  it.each([
    // Links, copies, writes, removals and devices: root acting on the release's word.
    ['L /etc/cron.d/evil - - - - /var/lib/smolotchi/payload', /type L/],
    ['L+ /var/lib/smolotchi/events.db - - - - /var/lib/smolotchi/release/releases.db', /type L\+/],
    ['C /var/lib/smolotchi/stolen.db - smolotchi smolotchi - /var/lib/smolotchi/release/releases.db', /type C/],
    ['w /var/lib/smolotchi/x - smolotchi smolotchi - payload', /type w/],
    ['R /var/lib/smolotchi - - - -', /type R/],
    ['r /var/lib/smolotchi/events.db', /type r/],
    ['x /var/lib/smolotchi/*', /type x/],
    ['Z /var/lib/smolotchi 0775 smolotchi smolotchi', /type Z/],
    ['c /run/smolotchi/mem 0666 smolotchi smolotchi - 1:1', /type c/],
    ['a+ /var/lib/smolotchi - - - - u:smolotchi:rwx', /type a\+/],
    ['f+ /var/lib/smolotchi/events.db 0644 smolotchi smolotchi', /type f\+/],
    ['f^ /var/lib/smolotchi/x 0644 smolotchi smolotchi - cred', /type f\^/],
    // Paths outside the app's folders, or inside the tool's own state.
    ['d /etc/smolotchi 0755 smolotchi smolotchi', /only paths under/],
    ['d /var/lib/smolotchi/../../../etc 0755 smolotchi smolotchi', /normalized/],
    ['d /var/lib/smolotchi-evil 0755 smolotchi smolotchi', /only paths under/],
    ['z /var/lib/smolotchi/release 0777 smolotchi smolotchi', /release tool's own/],
    ['d /var/lib/smolotchi/release/snapshots 0755 smolotchi smolotchi', /release tool's own/],
    ['d /run/smolotchi-release 0755 smolotchi smolotchi', /only paths under/],
    ['d %S/smolotchi 0755 smolotchi smolotchi', /specifiers/],
    ['z /var/lib/smolotchi/* 0644 smolotchi smolotchi', /globs/],
    ['d "/var/lib/smolotchi/a b" 0755 smolotchi smolotchi', /quotes/],
    // Owners other than the service user, and modes that open the folder to everyone.
    ['d /var/lib/smolotchi/x 0755 root root', /owner/],
    ['d /var/lib/smolotchi/x 0755 smolotchi root', /owner/],
    ['d /var/lib/smolotchi/x 0777 smolotchi smolotchi', /mode/],
    ['f /var/lib/smolotchi/x 4755 smolotchi smolotchi', /mode/],
    ['z /var/lib/smolotchi ~0777 smolotchi smolotchi', /mode/],
    // Ages delete files (systemd-tmpfiles-clean); D empties a folder at every boot.
    ['d /var/lib/smolotchi 0775 smolotchi smolotchi 1d', /age/],
    ['D /var/lib/smolotchi 0775 smolotchi smolotchi', /D \(emptied at boot\)/],
    ['f /var/lib/smolotchi/x 0644 smolotchi smolotchi - content', /argument/],
  ])('refuses %s', (line, why) => {
    expect(() => checkTmpfilesLine(line, 'tmpfiles.d/smolotchi.conf:1')).toThrow(why);
  });

  it('adds release lines after the bundled config, the bundled one winning for a path both declare', () => {
    const bundled = '# ours\nd /run/smolotchi 0755 smolotchi smolotchi -\n';
    const composed = composeTmpfiles(bundled, ['d /run/smolotchi 0775 smolotchi smolotchi -', 'd /var/lib/smolotchi/artifacts 0775 smolotchi smolotchi -']);
    expect(composed).toContain('d /run/smolotchi 0755 smolotchi smolotchi -');
    expect(composed).not.toContain('d /run/smolotchi 0775');
    expect(composed).toContain('d /var/lib/smolotchi/artifacts 0775 smolotchi smolotchi -');
    expect(composeTmpfiles(bundled, ['d /run/smolotchi 0775 smolotchi smolotchi -'])).toBe(bundled);
  });
});
