import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReleaseError } from '../../../../src/core/errors.js';
import {
  assertReleaseUnitName,
  bundledPackagingDir,
  diffUnits,
  readInstalledUnits,
  renderUnits,
  writeUnits,
  type UnitOptions,
} from '../../../../src/core/units/units.js';
import { tempDirPerTest } from '../../../support/temp-dir.js';
import { INSTALLED_TOOL, renderedFile } from '../../../support/units.js';

const opts = (o: Partial<UnitOptions> = {}): UnitOptions => ({ display: false, coreNet: false, toolCommand: INSTALLED_TOOL, ...o });
const bundled = bundledPackagingDir();

const tmpDir = tempDirPerTest('units-');

/** A release tree whose packaging/systemd holds the given files (relative paths). */
async function releaseWith(files: Record<string, string>): Promise<string> {
  const dir = path.join(tmpDir.path, 'release');
  for (const [rel, content] of Object.entries(files)) {
    const full = path.join(dir, 'packaging', 'systemd', rel);
    await fs.mkdir(path.dirname(full), { recursive: true });
    await fs.writeFile(full, content);
  }
  return dir;
}

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  return out.sort();
}

describe('renderUnits', () => {
  it('renders the default set from the bundled templates', async () => {
    const r = await renderUnits(null, bundled, opts());
    expect(r.source).toBe('bundled');
    expect(r.units).toEqual([
      'smolotchi-ai.service',
      'smolotchi-core.service',
      'smolotchi-prune.service',
      'smolotchi-prune.timer',
      'smolotchi-release-check.service',
      'smolotchi-web.service',
    ]);
    expect(r.startOrder).toEqual(['smolotchi-core.service', 'smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-prune.timer']);
    expect(r.tmpfiles).toMatch(/^d \/run\/smolotchi\/locks /m);
    for (const unit of ['smolotchi-core.service', 'smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-prune.service']) {
      expect(renderedFile(r, `${unit}.d/00-smolotchi-hardening.conf`)).toContain('ProtectSystem=strict');
      expect(renderedFile(r, `${unit}.d/zz-smolotchi-policy.conf`)).toContain('User=smolotchi\n');
    }
    expect(renderedFile(r, 'smolotchi-web.service.d/20-web.conf')).toContain('PrivateDevices=true');
    // Timers take no [Service] drop-ins; the tool's own unit gets neither hardening nor a venv.
    expect(r.files.some((f) => f.relPath.startsWith('smolotchi-prune.timer.d/'))).toBe(false);
    expect(r.files.some((f) => f.relPath.startsWith('smolotchi-release-check.service.d/'))).toBe(false);
  });

  it('generates a venv ExecStart drop-in per service with the app entry point', async () => {
    const r = await renderUnits(null, bundled, opts({ display: true }));
    const expected: Record<string, string> = {
      'smolotchi-core.service': '-m smolotchi.cli core',
      'smolotchi-web.service': '-m smolotchi.cli web',
      'smolotchi-ai.service': '-m smolotchi.ai.worker --loop',
      'smolotchi-display.service': '-m smolotchi.cli display',
      'smolotchi-prune.service': '-m smolotchi.cli prune',
    };
    for (const [unit, command] of Object.entries(expected)) {
      const dropin = renderedFile(r, `${unit}.d/05-venv-execstart.conf`) ?? '';
      expect(dropin).toMatch(/^ExecStart=$/m);
      expect(dropin).toContain(`\nExecStart=/opt/smolotchi/current/.venv/bin/python -P ${command}\n`);
      expect(dropin).toContain('WorkingDirectory=/var/lib/smolotchi\n');
      expect(renderedFile(r, `${unit}.d/zz-smolotchi-policy.conf`)).toContain('Environment=PYTHONPATH=/opt/smolotchi/current\n');
      // The empty assignment must come first, or systemd would keep both commands.
      expect(dropin.indexOf('ExecStart=\n')).toBeLessThan(dropin.indexOf('ExecStart=/'));
    }
  });

  it('renders display and core-net only when opted in; core-net replaces core', async () => {
    const r = await renderUnits(null, bundled, opts({ display: true, coreNet: true }));
    expect(r.units).toContain('smolotchi-display.service');
    expect(r.units).toContain('smolotchi-core-net.service');
    expect(r.units).not.toContain('smolotchi-core.service');
    expect(r.files.some((f) => f.relPath.startsWith('smolotchi-core.service'))).toBe(false);
    expect(r.startOrder).toEqual([
      'smolotchi-core-net.service',
      'smolotchi-ai.service',
      'smolotchi-web.service',
      'smolotchi-display.service',
      'smolotchi-prune.timer',
    ]);
    expect(renderedFile(r, 'smolotchi-core-net.service.d/05-venv-execstart.conf')).toContain('-m smolotchi.cli core\n');
    expect(renderedFile(r, 'smolotchi-core-net.service')).toMatch(/^AmbientCapabilities=CAP_NET_ADMIN$/m);
  });

  it('puts the tool command into the release-check unit and refuses one systemd cannot run', async () => {
    const r = await renderUnits(null, bundled, opts());
    expect(renderedFile(r, 'smolotchi-release-check.service')).toContain(`ExecStart=${INSTALLED_TOOL} release recover --boot\n`);
    expect(renderedFile(r, 'smolotchi-release-check.service')).not.toContain('@INSTALLED_TOOL@');
    for (const bad of ['node cli.js', '/usr/bin/node\nExecStartPre=/bin/sh', '/bin/$HOME/x', '/a/%n']) {
      await expect(renderUnits(null, bundled, opts({ toolCommand: bad }))).rejects.toBeInstanceOf(ReleaseError);
    }
  });

  it("lets a release's own templates win, translating the app's wrapper ExecStart", async () => {
    const release = await releaseWith({
      'smolotchi-core.service': '[Service]\nType=notify\nExecStart=/usr/local/bin/smolotchi core\n',
      'smolotchi-ai-worker.service': '[Service]\nExecStart=/usr/local/bin/smolotchi ai\n',
      'smolotchi-prune.service': '[Service]\nType=oneshot\nExecStart=/usr/local/bin/smolotchi prune\n',
      'README.md': 'not a unit',
      'tmpfiles.d/smolotchi.conf': 'd /run/smolotchi 0700 smolotchi smolotchi -\nd /var/lib/smolotchi/artifacts 0775 smolotchi smolotchi -\n',
      'dropins/10-hardening.conf': '[Service]\nProtectSystem=strict\n',
      'dropins/10-hardening-prune.conf': '[Service]\nPrivateNetwork=true\n',
      'dropins/smolotchi-core.service.d/20-paths.conf': '[Service]\nReadWritePaths=/var/lib/smolotchi\n',
    });
    const r = await renderUnits(release, bundled, opts());
    expect(r.source).toBe('release');
    expect(r.units).toEqual(['smolotchi-ai-worker.service', 'smolotchi-core.service', 'smolotchi-prune.service', 'smolotchi-release-check.service']);
    expect(renderedFile(r, 'smolotchi-core.service.d/10-hardening.conf')).toBe('[Service]\nProtectSystem=strict\n');
    expect(renderedFile(r, 'smolotchi-core.service.d/20-paths.conf')).toContain('ReadWritePaths');
    expect(renderedFile(r, 'smolotchi-ai-worker.service.d/05-venv-execstart.conf')).toContain('python -P -m smolotchi.ai.worker --loop\n');
    // A drop-in named after one unit belongs to that unit only.
    expect(renderedFile(r, 'smolotchi-prune.service.d/10-hardening-prune.conf')).toContain('PrivateNetwork');
    expect(renderedFile(r, 'smolotchi-core.service.d/10-hardening-prune.conf')).toBeUndefined();
    // The tool owns its check unit and the tmpfiles lines of its own run folders; the release's others follow.
    expect(renderedFile(r, 'smolotchi-release-check.service')).toContain(INSTALLED_TOOL);
    expect(r.tmpfiles).not.toContain('d /run/smolotchi 0700');
    expect(r.tmpfiles).toContain('d /var/lib/smolotchi/artifacts 0775 smolotchi smolotchi -');
    expect(r.startOrder).toEqual(['smolotchi-core.service', 'smolotchi-ai-worker.service', 'smolotchi-prune.service']);
  });

  it("refuses a release whose tmpfiles.d reaches outside the app's folders", async () => {
    const release = path.join(tmpDir.path, 'hostile-tmpfiles');
    await fs.mkdir(path.join(release, 'packaging/systemd/tmpfiles.d'), { recursive: true });
    await fs.writeFile(path.join(release, 'packaging/systemd/smolotchi-core.service'), '[Service]\nExecStart=/usr/local/bin/smolotchi core\n');
    await fs.writeFile(path.join(release, 'packaging/systemd/tmpfiles.d/smolotchi.conf'), 'd /run/elsewhere 0777 root root -\n');
    await expect(renderUnits(release, bundled, opts())).rejects.toThrow(/tmpfiles line refused/);
  });

  it('falls back to the bundled templates when a release ships none', async () => {
    const release = path.join(tmpDir.path, 'bare-release');
    await fs.mkdir(release);
    const r = await renderUnits(release, bundled, opts());
    expect(r.source).toBe('bundled');
    expect(r.templateHash).toBe((await renderUnits(null, bundled, opts())).templateHash);
  });

  it('refuses hostile unit names', () => {
    for (const bad of ['../../etc/passwd', 'foo.service', 'smolotchi-x.service/../../y', 'smolotchi-.service', 'smolotchi-x.socket', 'smolotchi-a@b.service', 'smolotchi-release-check.service']) {
      expect(() => assertReleaseUnitName(bad), bad).toThrow(ReleaseError);
    }
    expect(() => assertReleaseUnitName('smolotchi-core-net.service')).not.toThrow();
  });

  it('refuses a release that ships foreign units, directories or links in place of templates', async () => {
    const cases: Array<(dir: string) => Promise<unknown>> = [
      (d) => fs.writeFile(path.join(d, 'foo.service'), '[Service]\n'),
      (d) => fs.writeFile(path.join(d, 'getty@.service'), '[Service]\n'),
      (d) => fs.mkdir(path.join(d, 'smolotchi-x.service')),
      (d) => fs.symlink('/etc/passwd', path.join(d, 'smolotchi-x.service')),
      (d) => fs.mkdir(path.join(d, 'dropins', 'sshd.service.d'), { recursive: true }),
      (d) => fs.writeFile(path.join(d, 'smolotchi-release-check.service'), '[Service]\nExecStart=/bin/true\n'),
      async (d) => {
        await fs.mkdir(path.join(d, 'dropins', 'smolotchi-web.service.d'), { recursive: true });
        await fs.writeFile(path.join(d, 'dropins', 'smolotchi-web.service.d', '05-venv-execstart.conf'), '[Service]\n');
      },
    ];
    for (const [i, make] of cases.entries()) {
      const release = path.join(tmpDir.path, `hostile-${i}`);
      await fs.mkdir(path.join(release, 'packaging', 'systemd'), { recursive: true });
      await fs.writeFile(path.join(release, 'packaging', 'systemd', 'smolotchi-core.service'), '[Service]\n');
      await make(path.join(release, 'packaging', 'systemd'));
      await expect(renderUnits(release, bundled, opts()), `case ${i}`).rejects.toBeInstanceOf(ReleaseError);
    }
  });

  it('refuses an opt-in the templates cannot serve', async () => {
    const release = await releaseWith({ 'smolotchi-core.service': '[Service]\n' });
    await expect(renderUnits(release, bundled, opts({ coreNet: true }))).rejects.toThrow(/smolotchi-core-net.service/);
  });

  it('hashes deterministically and changes the hash with the content', async () => {
    const a = await renderUnits(null, bundled, opts());
    const b = await renderUnits(null, bundled, opts());
    expect(a.templateHash).toMatch(/^[0-9a-f]{64}$/);
    expect(b.templateHash).toBe(a.templateHash);
    expect((await renderUnits(null, bundled, opts({ display: true }))).templateHash).not.toBe(a.templateHash);
    const r1 = await renderUnits(await releaseWith({ 'smolotchi-core.service': '[Service]\nNice=1\n' }), bundled, opts());
    await fs.writeFile(path.join(tmpDir.path, 'release', 'packaging', 'systemd', 'smolotchi-core.service'), '[Service]\nNice=2\n');
    const r2 = await renderUnits(path.join(tmpDir.path, 'release'), bundled, opts());
    expect(r2.templateHash).not.toBe(r1.templateHash);
  });
});

describe('writeUnits / readInstalledUnits / diffUnits', () => {
  const unitDir = () => path.join(tmpDir.path, 'etc', 'systemd', 'system');
  const tmpfilesPath = () => path.join(tmpDir.path, 'etc', 'tmpfiles.d', 'smolotchi.conf');

  it('writes the rendered set, reads it back without drift, and is idempotent', async () => {
    const r = await renderUnits(null, bundled, opts());
    const first = await writeUnits(unitDir(), tmpfilesPath(), r);
    expect(first).toEqual({ removedUnits: [], changed: true });
    expect(await readInstalledUnits(unitDir())).toEqual(r.files);
    expect(diffUnits(r, await readInstalledUnits(unitDir()))).toEqual({ added: [], changed: [], removed: [], removedUnits: [], drift: false });
    expect(await fs.readFile(tmpfilesPath(), 'utf8')).toBe(r.tmpfiles);
    expect(await writeUnits(unitDir(), tmpfilesPath(), r)).toEqual({ removedUnits: [], changed: false });
    // Atomic writes leave no temp files behind.
    expect((await listTree(path.join(tmpDir.path, 'etc'))).filter((p) => path.basename(p).startsWith('.'))).toEqual([]);
  });

  it('reports an edited or deleted installed file as drift, and repairs it', async () => {
    const r = await renderUnits(null, bundled, opts());
    await writeUnits(unitDir(), tmpfilesPath(), r);
    await fs.appendFile(path.join(unitDir(), 'smolotchi-web.service.d', '00-smolotchi-hardening.conf'), 'ProtectSystem=false\n');
    await fs.rm(path.join(unitDir(), 'smolotchi-ai.service'));
    const diff = diffUnits(r, await readInstalledUnits(unitDir()));
    expect(diff).toMatchObject({ added: ['smolotchi-ai.service'], changed: ['smolotchi-web.service.d/00-smolotchi-hardening.conf'], removed: [], drift: true });
    expect((await writeUnits(unitDir(), tmpfilesPath(), r)).changed).toBe(true);
    expect(diffUnits(r, await readInstalledUnits(unitDir())).drift).toBe(false);
  });

  it('removes a unit absent from the new render with its drop-in folder and enable links', async () => {
    await writeUnits(unitDir(), tmpfilesPath(), await renderUnits(null, bundled, opts()));
    const wants = path.join(unitDir(), 'multi-user.target.wants');
    await fs.mkdir(wants);
    await fs.symlink('/etc/systemd/system/smolotchi-core.service', path.join(wants, 'smolotchi-core.service'));
    await fs.symlink('/etc/systemd/system/smolotchi-web.service', path.join(wants, 'smolotchi-web.service'));
    await fs.symlink('/lib/systemd/system/ssh.service', path.join(wants, 'ssh.service'));
    const unrelated = path.join(unitDir(), 'ssh.service.d');
    await fs.mkdir(unrelated);
    await fs.writeFile(path.join(unrelated, 'x.conf'), '[Service]\n');

    const net = await renderUnits(null, bundled, opts({ coreNet: true }));
    expect(diffUnits(net, await readInstalledUnits(unitDir())).removedUnits).toEqual(['smolotchi-core.service']);
    const result = await writeUnits(unitDir(), tmpfilesPath(), net);
    expect(result).toEqual({ removedUnits: ['smolotchi-core.service'], changed: true });
    const tree = await listTree(unitDir());
    expect(tree.filter((p) => p.includes('smolotchi-core.service'))).toEqual([]);
    expect(tree).toContain('smolotchi-core-net.service.d/05-venv-execstart.conf');
    expect(tree).toContain('multi-user.target.wants/smolotchi-web.service');
    expect(tree).toContain('multi-user.target.wants/ssh.service');
    expect(tree).toContain('ssh.service.d/x.conf');
    expect(diffUnits(net, await readInstalledUnits(unitDir())).drift).toBe(false);
  });

  it("leaves the operator's override.conf alone and cleans up temp files a crash left", async () => {
    const r = await renderUnits(null, bundled, opts());
    await writeUnits(unitDir(), tmpfilesPath(), r);
    const web = path.join(unitDir(), 'smolotchi-web.service.d');
    await fs.writeFile(path.join(web, 'override.conf'), '[Service]\nEnvironment=X=1\n');
    await fs.writeFile(path.join(web, '.00-smolotchi-hardening.conf.123-abcdef01.tmp'), 'half');
    await fs.writeFile(path.join(unitDir(), '.smolotchi-web.service.123-abcdef01.tmp'), 'half');
    expect(diffUnits(r, await readInstalledUnits(unitDir())).drift).toBe(false);
    await writeUnits(unitDir(), tmpfilesPath(), await renderUnits(null, bundled, opts({ coreNet: true })));
    expect(await fs.readFile(path.join(web, 'override.conf'), 'utf8')).toContain('X=1');
    expect((await listTree(unitDir())).filter((p) => p.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to write a rendered set naming files outside our units', async () => {
    const r = await renderUnits(null, bundled, opts());
    const hostile = { ...r, files: [...r.files, { relPath: '../../etc/passwd', content: 'x' }] };
    await expect(writeUnits(unitDir(), tmpfilesPath(), hostile)).rejects.toBeInstanceOf(ReleaseError);
    await expect(fs.access(path.join(tmpDir.path, 'etc', 'passwd'))).rejects.toThrow();
  });
});
