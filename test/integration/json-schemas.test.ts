import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile, type CliRun } from '../support/cli.js';
import { makeFakeSystemctl } from '../support/fake-systemctl.js';

/**
 * Every command the built CLI declares has schemas/<command>.schema.json, and its real --json
 * output, on success and on failure (usage errors included), validates against it. A command
 * added without a schema, or without a sample run here, fails this file.
 */

const SCHEMAS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'schemas');
const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

let work: string;
let root: string;
let repo: string;
let keys: string;
let cli: (...args: string[]) => Promise<CliRun>;

/** Each sample: the arguments after `release <command>` and the exit code the run must have. */
type Sample = { args: () => string[]; exit: number };
const SAMPLES: Record<string, { ok: Sample[]; fail: Sample[] }> = {
  install: {
    ok: [
      { args: () => ['1.0.0'], exit: 0 },
      { args: () => ['1.1.0', '--dry-run'], exit: 0 },
      { args: () => ['1.1.0'], exit: 0 },
      { args: () => ['1.1.0'], exit: 0 }, // already current
      { args: () => ['1.2.0'], exit: 5 }, // fails its gate, rolled back
    ],
    fail: [
      { args: () => ['9.9.9'], exit: 3 },
      { args: () => ['1.0.0', '--settle', 'soon'], exit: 2 },
    ],
  },
  rollback: { ok: [{ args: () => ['--dry-run'], exit: 0 }, { args: () => [], exit: 0 }], fail: [{ args: () => ['--to', '7.7.7'], exit: 3 }] },
  history: { ok: [{ args: () => ['--limit', '5'], exit: 0 }], fail: [{ args: () => ['--limit', '0'], exit: 2 }] },
  list: { ok: [{ args: () => [], exit: 0 }], fail: [{ args: () => ['--bogus'], exit: 2 }] },
  status: { ok: [{ args: () => [], exit: 0 }], fail: [{ args: () => ['extra-argument'], exit: 2 }] },
  prune: { ok: [{ args: () => ['--keep', '1', '--dry-run'], exit: 0 }, { args: () => ['--keep', '1'], exit: 0 }], fail: [{ args: () => ['--keep', '0'], exit: 2 }] },
  recover: { ok: [{ args: () => [], exit: 0 }], fail: [{ args: () => ['--wait=soon'], exit: 2 }] },
  verify: { ok: [{ args: () => [], exit: 0 }], fail: [{ args: () => ['8.8.8'], exit: 3 }] },
  init: { ok: [{ args: () => ['--dry-run'], exit: 0 }, { args: () => [], exit: 0 }], fail: [{ args: () => ['--dry-run', 'now'], exit: 2 }] },
  mark: {
    ok: [{ args: () => ['bad', '1.2.0', '--reason', 'fails its health check'], exit: 0 }, { args: () => ['good', '1.0.0'], exit: 0 }],
    fail: [{ args: () => ['good', '6.6.6'], exit: 3 }, { args: () => ['so-so', '1.0.0'], exit: 2 }],
  },
  keygen: { ok: [{ args: () => ['--out', keys], exit: 0 }], fail: [{ args: () => [], exit: 2 }] },
  pack: {
    ok: [{ args: () => ['--repo', repo, '--version', '1.0.0', '--key', keyFile(), '--out', path.join(work, 'packed')], exit: 0 }],
    fail: [{ args: () => ['--repo', repo, '--version', '6.6.6', '--key', keyFile(), '--out', path.join(work, 'packed')], exit: 3 }],
  },
};

const keyFile = () => path.join(keys, readdirSync(keys).find((f) => f.endsWith('.key'))!);

/** The commands the built CLI declares, read from its own help: what an operator can run. */
async function declaredCommands(): Promise<string[]> {
  const help = (await runCli(['release', '--help'])).stdout;
  const block = help.slice(help.indexOf('Commands:')).split('\n\n')[0]!.split('\n').slice(1);
  return block.map((l) => /^ {2}(\S+)/.exec(l)?.[1]).filter((c): c is string => Boolean(c) && c !== 'help');
}

function validator(command: string): ValidateFunction {
  const ajv = new Ajv({ allErrors: true, strict: true });
  ajv.addFormat('date-time', ISO_UTC); // JSON times are ISO 8601 in UTC, never local
  ajv.addSchema(JSON.parse(readFileSync(path.join(SCHEMAS, 'error.schema.json'), 'utf8')));
  return ajv.compile(JSON.parse(readFileSync(path.join(SCHEMAS, `${command}.schema.json`), 'utf8')));
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-schemas-'));
  root = path.join(work, 'root');
  keys = path.join(work, 'keys');
  ({ repo } = await createSampleRepo(path.join(work, 'app'), [{ version: '1.0.0' }, { version: '1.1.0' }, { version: '1.2.0', behaviour: 'health-check-fails' }]));
  const fake = makeFakeSystemctl(mkdtempSync(path.join(work, 'fake-')));
  writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: repo });
  const needsRoot = new Set(['keygen', 'pack']);
  cli = (command, ...args) =>
    runCli(['release', command!, ...args, '--json', ...(needsRoot.has(command!) ? [] : ['--root', root, '--systemctl', fake.path])]);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('JSON output against schemas/', () => {
  it('every declared command has a schema and sample runs, and its real output validates', async () => {
    const commands = await declaredCommands();
    expect(commands).toContain('install');
    // keygen before pack (pack signs with its key); install before the commands that read a device.
    const order = ['keygen', ...commands.filter((c) => c !== 'keygen')];
    for (const command of order) {
      expect(readdirSync(SCHEMAS), `schemas/${command}.schema.json is missing`).toContain(`${command}.schema.json`);
      const samples = SAMPLES[command];
      expect(samples, `no sample runs for \`release ${command}\` in this test: add a success and a failure`).toBeDefined();
      const validate = validator(command);
      for (const [kind, list] of [['success', samples!.ok], ['failure', samples!.fail]] as const) {
        expect(list.length, `${command}: no ${kind} sample`).toBeGreaterThan(0);
        for (const sample of list) {
          const r = await cli(command, ...sample.args());
          const what = `release ${command} ${sample.args().join(' ')} --json (exit ${r.exitCode})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
          expect(r.exitCode, what).toBe(sample.exit);
          const json = r.json();
          expect(validate(json), `${what}\nschema errors: ${JSON.stringify(validate.errors, null, 2)}`).toBe(true);
          if (kind === 'failure') expect(json, what).toMatchObject({ command, error: { exitCode: sample.exit } });
        }
      }
    }
  });

  it('an unknown command prints the JSON error object with no command (exit 2)', async () => {
    const r = await runCli(['release', 'statsu', '--json']);
    expect(r.exitCode).toBe(2);
    const json = r.json();
    expect(json).toEqual({ schemaVersion: 1, command: null, error: { message: "unknown command 'statsu'", exitCode: 2, hint: expect.stringContaining('did you mean status?') } });
    const ajv = new Ajv();
    expect(ajv.validate(JSON.parse(readFileSync(path.join(SCHEMAS, 'error.schema.json'), 'utf8')), json)).toBe(true);
  });
});
