import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ANSIBLE_DIR } from '../../../scripts/fleet.js';

// The role's filters judge each device's answer (exit code + JSON). The fleet suite drives the
// common answers for real; these are the ones a sandbox cannot produce on demand.
const PLUGIN = path.join(ANSIBLE_DIR, 'roles', 'smolotchi_release', 'filter_plugins', 'smolotchi_release.py');
const RUNNER = `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("f", sys.argv[1])
f = importlib.util.module_from_spec(spec); spec.loader.exec_module(f)
calls = json.load(sys.stdin)
out = []
for name, args in calls:
    out.append(getattr(f, name)(*args))
print(json.dumps(out))
`;

async function call(calls: [string, unknown[]][]): Promise<any[]> {
  const r = await execa('/usr/bin/python3', ['-B', '-c', RUNNER, PLUGIN], { input: JSON.stringify(calls) });
  return JSON.parse(r.stdout) as any[];
}

const answer = (rc: number | null, json: unknown, stderr = '') => ({ rc, stdout: json === null ? '' : JSON.stringify(json), stderr });

describe('fleet role: the verdict on a device\'s answer', () => {
  it('fails the host on exit 6 (degraded), on any other code with the tool\'s message, and when no JSON came back', async () => {
    const [degraded, locked, crashed, lost] = await call([
      ['verdict', [answer(6, { status: 'degraded', version: '1.1.0', failure: 'smolotchi-web: inactive' }), 'install']],
      ['verdict', [answer(75, { error: { message: 'release lock held by pid 42 (install 1.2.0)', exitCode: 75, hint: null } }), 'install']],
      ['verdict', [answer(1, null, 'node: out of memory\nAborted'), 'install']],
      ['verdict', [{ unreachable: true, msg: 'Data could not be sent to remote host "dev3"' }, 'install']],
    ]);
    expect(degraded).toMatchObject({ ok: false, reason: expect.stringMatching(/^exit 6: DEGRADED.*smolotchi-web: inactive/) });
    expect(locked).toMatchObject({ ok: false, reason: 'exit 75: release lock held by pid 42 (install 1.2.0)' });
    expect(crashed).toMatchObject({ ok: false, reason: 'exit 1: Aborted' });
    expect(lost).toMatchObject({ ok: false, reason: expect.stringContaining('could not be sent') });
  });

  it('reports no change for a release that is already current, and a change for an install', async () => {
    const [same, fresh] = await call([
      ['verdict', [answer(0, { status: 'already-current', version: '1.0.0', previous: '1.0.0' }), 'install']],
      ['verdict', [answer(0, { status: 'installed', version: '1.1.0', previous: '1.0.0' }), 'install']],
    ]);
    expect(same).toMatchObject({ ok: true, changed: false });
    expect(fresh).toMatchObject({ ok: true, changed: true, previous: '1.0.0' });
  });

  it('keeps one Markdown row per host when a reason holds a pipe or a line break', async () => {
    const status = { current: '1.0.0', lastGood: '1.0.0', degraded: true, degradedReason: 'web | down\nagain', lastDeploy: null, drift: false, driftFiles: [] };
    const [row] = await call([['status_row', [answer(6, status), 'dev1']]]);
    const [report] = await call([['fleet_report', [{ dev1: { smolotchi_release_status_row: row } }, ['dev1']]]]);
    const [markdown] = await call([['fleet_markdown', [report]]]);
    const rows = (markdown as string).split('\n').filter((l) => l.startsWith('| dev1'));
    expect(rows).toEqual(['| dev1 | 1.0.0 | 1.0.0 | DEGRADED: web \\| down again | - | no |']);
    expect(report).toMatchObject({ versions: { '1.0.0': 1 }, degraded: ['dev1'] });
  });

  it('copies only the files the device lacks: missing, changed, not root\'s with the mode, or unreadable here', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-artifacts-'));
    try {
      const files = ['a.tar.gz', 'a.tar.gz.sha256', 'a.manifest.json', 'a.manifest.json.sig'].map((name) => path.join(dir, name));
      for (const file of files) writeFileSync(file, 'same content\n');
      const [sum] = await call([['_sha1', [files[0]]]]);
      const good = (file: string, extra: Record<string, unknown> = {}) => ({ path: `/var/cache/smolotchi/artifacts/1.0.0/${path.basename(file)}`, uid: 0, gid: 0, mode: '0600', checksum: sum, ...extra });
      const [fresh, same, hostile, unreadable] = await call([
        ['to_copy', [{ files: [] }, files, '0600']],
        ['to_copy', [{ files: files.map((f) => good(f)) }, files, '0600']],
        // Swapped content, a file the service user owns, a group-writable one, no checksum: each is copied again.
        ['to_copy', [{ files: [good(files[0], { checksum: '0'.repeat(40) }), good(files[1], { uid: 990 }), good(files[2], { mode: '0660' }), good(files[3], { checksum: undefined })] }, files, '0600']],
        ['to_copy', [{ files: [good('/nonexistent/a.pub', { checksum: undefined })] }, ['/nonexistent/a.pub'], '0600']],
      ]);
      expect(fresh).toEqual(files);
      expect(same).toEqual([]);
      expect(hostile).toEqual(files);
      expect(unreadable).toEqual(['/nonexistent/a.pub']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
