import { describe, expect, it, vi } from 'vitest';
import { RELEASE_COMMANDS, type CommandSpec } from '../../../src/cli/commands.js';
import { commandFlags, normalizeArgv, type CliOptions, type FlagSpec } from '../../../src/cli/flags.js';
import { parseWithCommander } from '../../../src/cli/program.js';
import { quickParse } from '../../../src/cli/quick-parse.js';
import type { Context } from '../../../src/core/context.js';
import type { CommandResult } from '../../../src/render/render.js';

// The quick parser runs every well-formed command without commander; commander answers the rest.
// The two must never differ: on every line below, either the quick parser declines, or both pick
// the same command with the same arguments and options. Lines commander refuses, the quick parser
// must decline (commander's error is the one the user sees); lines it accepts, the quick parser
// must read too, unless they use a form it leaves to commander by design.

/** The registry with runs that report what they were given, instead of running. */
const ECHO: CommandSpec[] = RELEASE_COMMANDS.map((spec) => ({
  ...spec,
  run: async (o: CliOptions, args: string[]) => ({ echo: { args, o } }) as unknown as CommandResult,
}));

type Outcome = { picked: { name: string; args: string[]; o: CliOptions } } | { help: true } | { error: string };

async function viaCommander(argv: string[]): Promise<Outcome> {
  // commander prints help on stdout itself; the test wants only to know that it did.
  const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    const pick = await parseWithCommander(argv, () => {}, ECHO);
    if (!pick) return { help: true };
    const { echo } = (await pick.run({} as Context)) as unknown as { echo: { args: string[]; o: CliOptions } };
    return { picked: { name: pick.spec.name, ...echo } };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    write.mockRestore();
  }
}

function viaQuick(argv: string[]): Outcome | null {
  const pick = quickParse(argv, ECHO);
  return pick && { picked: { name: pick.spec.name, args: pick.args, o: pick.o } };
}

/** A value the flag accepts, and ones it refuses. */
function values(f: FlagSpec): { good: string[]; bad: string[] } {
  if (f.choices) return { good: [...f.choices], bad: ['bogus'] };
  if (f.parse) return { good: ['5'], bad: ['x', '-1', '100000', ''] };
  return { good: [/<(version|x\.y\.z)>/.test(f.flags) ? '1.2.3' : '/srv/some where'], bad: ['', '--json'] };
}

/** Each way to write each flag: well-formed ones, and mistakes. */
function flagForms(spec: CommandSpec): { good: string[][]; bad: string[][] } {
  const good: string[][] = [];
  const bad: string[][] = [];
  for (const f of commandFlags(spec)) {
    const names = [...f.flags.matchAll(/(--?[a-z][a-z0-9-]*)/gi)].map((m) => m[1]!);
    const long = names.find((n) => n.startsWith('--'))!;
    if (long === '--wait-seconds') continue; // normalizeArgv's own: written as --wait=N
    if (!f.flags.includes('<')) {
      for (const name of names) good.push([name]);
      bad.push([`${long}=1`]);
      continue;
    }
    const v = values(f);
    for (const value of v.good) good.push([long, value], [`${long}=${value}`]);
    for (const value of v.bad) bad.push([long, value], [`${long}=${value}`]);
    bad.push([long]);
  }
  if (spec.uses.wait) good.push(['--wait=30']);
  bad.push(['--bogus'], ['-x'], ['-qv'], ['--'], ['--help'], ['-h'], ['--wait=x']);
  return { good, bad };
}

/** Positional arguments: the right count, and one too few or too many. */
function positionals(spec: CommandSpec): { good: string[][]; bad: string[][] } {
  const words = spec.args?.split(' ') ?? [];
  const sample = (n: number) => ['good', '1.2.3', '2.0.0'].slice(0, n);
  const required = words.filter((w) => w.startsWith('<')).length;
  const good = [...new Set([required, words.length])].map(sample);
  const bad = [sample(words.length + 1), ...(required > 0 ? [sample(required - 1)] : [])];
  return { good, bad };
}

/** The flags a command cannot run without, written out. */
function requiredFlags(spec: CommandSpec): string[] {
  return commandFlags(spec).filter((f) => f.required).flatMap((f) => [f.flags.split(' ')[0]!, values(f).good[0]!]);
}

function lines(spec: CommandSpec): { argv: string[]; wellFormed: boolean }[] {
  const base = ['node', 'cli.js', 'release', spec.name];
  const flags = flagForms(spec);
  const args = positionals(spec);
  const needed = requiredFlags(spec);
  const out: { argv: string[]; wellFormed: boolean }[] = [];
  const add = (words: string[], wellFormed: boolean) => out.push({ argv: [...base, ...words], wellFormed });
  for (const p of args.good) {
    add([...p, ...needed], true);
    if (needed.length) add(p, false);
    for (const f of flags.good) add([...p, ...needed, ...f], true), add([...f, ...needed, ...p], true);
    for (const f of flags.bad) add([...p, ...needed, ...f], false);
    for (let i = 0; i < flags.good.length; i++) {
      for (let j = i + 1; j < flags.good.length; j += 3) add([...needed, ...flags.good[i]!, ...p, ...flags.good[j]!], true);
    }
    add([...p, ...needed, ...flags.good.flat()], true);
  }
  for (const p of args.bad) add([...p, ...needed], false);
  return out;
}

describe('quick parser against commander', () => {
  it.each(RELEASE_COMMANDS.map((c) => c.name))('release %s: same command, arguments and options, or left to commander', async (name) => {
    const spec = ECHO.find((c) => c.name === name)!;
    let read = 0;
    for (const { argv: raw, wellFormed } of lines(spec)) {
      const argv = normalizeArgv(raw);
      const quick = viaQuick(argv);
      const commander = await viaCommander(argv);
      const line = raw.slice(2).join(' ');
      if (quick) {
        read++;
        expect(quick, line).toEqual(commander);
      } else if (wellFormed) {
        // A well-formed line the quick parser declines costs commander's ~10 ms for nothing.
        expect({ line, commander }).toEqual({ line, commander: { error: expect.any(String) } });
      }
      if ('error' in commander || 'help' in commander) expect(quick, line).toBeNull();
    }
    expect(read).toBeGreaterThan(10);
  });

  it('reads what the tests and the units run, the way commander does', () => {
    const pick = quickParse(['node', 'cli.js', 'release', 'rollback', '--root', '/tmp/r', '--settle', '0', '--no-color', '-q', '--to=1.2.0'], RELEASE_COMMANDS);
    expect(pick?.spec.name).toBe('rollback');
    expect(pick?.o).toEqual({ root: '/tmp/r', settle: 0, color: false, quiet: true, to: '1.2.0' });
    expect(quickParse(['node', 'cli.js', 'release', 'recover', '--boot'], RELEASE_COMMANDS)?.o).toEqual({ boot: true, color: true });
  });

  it('leaves help, program-level flags and unknown commands to commander', () => {
    for (const words of [['release', 'rollback', '--help'], ['--root', '/r', 'release', 'status'], ['release', '--json', 'status'], ['release', 'rollbak'], ['help', 'release'], ['release']]) {
      expect(quickParse(['node', 'cli.js', ...words], RELEASE_COMMANDS), words.join(' ')).toBeNull();
    }
  });
});
