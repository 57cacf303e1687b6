import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.js';

// The bash completion is a static list shipped in the .deb: it must offer every command and flag
// the built CLI declares, or operators tab into nothing.
const COMPLETION = readFileSync(path.join(import.meta.dirname, '../../../deb/smolotchi.bash-completion'), 'utf8');

const longFlags = (help: string) => [...new Set([...help.matchAll(/^\s+(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!))];

describe('bash completion', () => {
  it('offers every release command and each command its own flags', async () => {
    const help = (await runCli(['release', '--help'])).stdout;
    const commands = help.slice(help.indexOf('Commands:')).split('\n\n')[0]!.split('\n').slice(1)
      .map((l) => /^ {2}(\S+)/.exec(l)?.[1]).filter((c): c is string => Boolean(c) && c !== 'help');
    expect(commands.length).toBeGreaterThan(5);
    const offered = /local commands="([^"]+)"/.exec(COMPLETION)![1]!.split(' ');
    expect(offered.sort()).toEqual([...commands].sort());
    const globals = /local globals="([^"]+)"/.exec(COMPLETION)![1]!.split(' ');
    for (const command of commands) {
      const own = new RegExp(`^\\s+${command}\\) flags\\+="([^"]*)"`, 'm').exec(COMPLETION)?.[1]?.trim().split(' ') ?? [];
      const missing = longFlags((await runCli(['release', command, '--help'])).stdout).filter((f) => !own.includes(f) && !globals.includes(f));
      expect(missing, command).toEqual([]);
    }
  });
});
