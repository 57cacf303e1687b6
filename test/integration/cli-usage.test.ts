import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { CLI, runCli } from '../support/cli.js';

/** The command line itself: one error style, exit 2 for every usage error, help that reads top-down. */

describe('usage errors', () => {
  it('`smolotchi release` without a command exits 2 like `smolotchi` does, in the same words', async () => {
    const bare = await runCli([]);
    const release = await runCli(['release']);
    for (const r of [bare, release]) {
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toBe('smolotchi: no command given\nhint: `smolotchi release --help` lists the commands');
    }
  });

  it('parser errors use the tool\'s style: `smolotchi:` and `hint:`, never commander\'s `error:`', async () => {
    const cases = [['release', 'statsu'], ['release', 'install', '1.0.0', '--bogus'], ['release', 'install'], ['release', 'history', '--limit', 'ten']];
    for (const args of cases) {
      const r = await runCli(args);
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/^smolotchi: .+\nhint: .+$/);
      expect(r.stderr).not.toMatch(/^error:/m);
      expect(r.stdout).toBe('');
    }
    expect((await runCli(['release', 'statsu'])).stderr).toContain('hint: did you mean status?');
    expect((await runCli(['release', 'history', '--limit', 'ten'])).stderr).toMatch(/^smolotchi: --limit must be a whole number from 1 to 10000 \(got 'ten'\)$/m);
  });

  it('--wait takes seconds only after `=`: `--wait 1.3.0` is no longer read as seconds', async () => {
    const spaced = await runCli(['release', 'install', '--wait', '30', '1.3.0', '--json']);
    expect(spaced.exitCode).toBe(2);
    expect(spaced.stderr).toContain('smolotchi: --wait takes its seconds after an equals sign\nhint: write --wait=30');
    expect(spaced.json()).toMatchObject({ command: 'install', error: { exitCode: 2 } });
    const bad = await runCli(['release', 'rollback', '--wait=later']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^smolotchi: --wait must be a whole number/);
  });

  it('--yes is gone: nothing ever asked, so it is refused like any unknown flag', async () => {
    const r = await runCli(['release', 'status', '--yes', '--root', '/nonexistent-root-for-yes']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^smolotchi: unknown option '--yes'/);
  });
});

describe('--help', () => {
  it('`smolotchi help release install` shows install\'s own help, as `release install --help` does', async () => {
    const viaHelp = await runCli(['help', 'release', 'install']);
    const viaFlag = await runCli(['release', 'install', '--help']);
    expect(viaHelp.exitCode).toBe(0);
    expect(viaHelp.stdout).toBe(viaFlag.stdout);
    expect(viaHelp.stdout).toMatch(/^Usage: smolotchi release install \[options\] <version>/);
  });

  it('a command\'s own flags come first, then the shared ones, exit codes once, examples last', async () => {
    const help = (await runCli(['release', 'install', '--help'])).stdout;
    const at = (s: string) => help.indexOf(s);
    expect(at('--source')).toBeGreaterThan(-1);
    expect(at('--source')).toBeLessThan(at('--systemctl'));
    expect(at('--settle')).toBeLessThan(at('Global options:'));
    expect(at('Global options:')).toBeLessThan(at('Exit codes:'));
    expect(at('Exit codes:')).toBeLessThan(at('Examples:'));
    expect(help.trimEnd().split('\n').at(-1)).toMatch(/^ {2}smolotchi release install /);
    expect(help.split('Exit codes:').length).toBe(2);
    expect(help.match(/^ {1,3}75  /gm)).toHaveLength(1);
  });

  it('--systemctl is shown only on the commands that call systemctl', async () => {
    for (const c of ['install', 'rollback', 'prune', 'recover']) expect((await runCli(['release', c, '--help'])).stdout, c).toContain('--systemctl');
    for (const c of ['history', 'list', 'status', 'verify', 'keygen', 'pack']) expect((await runCli(['release', c, '--help'])).stdout, c).not.toContain('--systemctl');
  });

  it('a reader that stops early (| head) gets no stack trace and the command still exits 0', async () => {
    // The reader closes the pipe after one line; help is long enough to fill it past that.
    const r = await execa('bash', ['-c', `"$0" "$1" release --help | head -n 1; exit "\${PIPESTATUS[0]}"`, process.execPath, CLI], { reject: false });
    expect(r.stdout).toMatch(/^Usage: smolotchi release/);
    expect(r.stderr).not.toMatch(/EPIPE|Error/);
    expect(r.exitCode).toBe(0);
  });
});
