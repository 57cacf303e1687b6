import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { runGit } from '../support/git-repo.js';

/**
 * Root's git never reads root's own or the system's configuration: a smudge filter, an
 * attributes file or export-subst configured there would run commands as root or change what a
 * release contains. The attack is configured for real (HOME, XDG_CONFIG_HOME, GIT_CONFIG_SYSTEM)
 * and proven to work on plain git first.
 */

let work: string;
let repo: string;
let marker: string;
let attackEnv: Record<string, string>;
const LITERAL = '$Format:%H$';

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-gitiso-'));
  marker = path.join(work, 'PWNED');
  ({ repo } = await createSampleRepo(path.join(work, 'app'), [{ version: '1.0.0' }]));
  // The release asks for a filter by name; root's configuration would define it.
  await runGit(repo, ['checkout', '--quiet', 'v1.0.0']);
  writeFileSync(path.join(repo, '.gitattributes'), '*.py filter=evil\n');
  writeFileSync(path.join(repo, 'stamp.txt'), `${LITERAL}\n`);
  await runGit(repo, ['add', '--all']);
  await runGit(repo, ['commit', '--quiet', '-m', 'asks for a filter']);
  await runGit(repo, ['tag', '-f', '-a', '-m', 'release 1.0.0', 'v1.0.0']);

  const evil = `[filter "evil"]\n\tsmudge = "touch ${marker}; cat"\n\trequired = true\n`;
  const attributes = path.join(work, 'attributes');
  writeFileSync(attributes, '* filter=evil\nstamp.txt export-subst\n');
  const home = path.join(work, 'home');
  mkdirSync(home);
  writeFileSync(path.join(home, '.gitconfig'), `${evil}[core]\n\tattributesFile = ${attributes}\n`);
  const xdg = path.join(work, 'xdg');
  mkdirSync(path.join(xdg, 'git'), { recursive: true });
  writeFileSync(path.join(xdg, 'git', 'attributes'), '* filter=evil\nstamp.txt export-subst\n');
  writeFileSync(path.join(xdg, 'git', 'config'), evil);
  const system = path.join(work, 'gitconfig-system');
  writeFileSync(system, `${evil}[core]\n\tattributesFile = ${attributes}\n`);
  attackEnv = { HOME: home, XDG_CONFIG_HOME: xdg, GIT_CONFIG_SYSTEM: system };
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("root's git configuration cannot reach a release", () => {
  it('the attack is real: plain git archive with that environment runs the smudge command and expands $Format', async () => {
    const r = await execa('git', ['archive', '--format=tar', 'v1.0.0'], { cwd: repo, env: attackEnv, encoding: 'buffer' });
    expect(r.exitCode).toBe(0);
    expect(existsSync(marker)).toBe(true);
    rmSync(marker);
  });

  it('install runs no filter and applies no attributes from HOME, XDG_CONFIG_HOME or GIT_CONFIG_SYSTEM', async () => {
    const root = path.join(work, 'root');
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
    const r = await runCli(['release', 'install', '1.0.0', '--root', root, '--source', repo], { env: attackEnv });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(marker)).toBe(false);
    expect(readFileSync(path.join(root, 'opt/smolotchi/releases/1.0.0/stamp.txt'), 'utf8')).toBe(`${LITERAL}\n`);
  });
});
