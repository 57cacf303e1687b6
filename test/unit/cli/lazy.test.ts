// The CLI's lazy loads: synchronous through require() where a built module can take that way,
// import() everywhere else, and every call site naming one module, not two.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { lazy } from '../../../src/cli/lazy.js';

const ROOT = path.join(import.meta.dirname, '..', '..', '..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-lazy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A folder of built ES modules, as dist/ is: "type": "module", .js files.
writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
writeFileSync(path.join(dir, 'caller.js'), '');
writeFileSync(path.join(dir, 'dep.js'), 'export const depLoaded = true;');
writeFileSync(path.join(dir, 'plain.js'), "import { depLoaded } from './dep.js';\nexport const answer = depLoaded ? 42 : 0;");
writeFileSync(path.join(dir, 'awaits.js'), 'await Promise.resolve();\nexport const answer = 43;');
writeFileSync(path.join(dir, 'throws.js'), "throw new Error('broken at load');");
const caller = pathToFileURL(path.join(dir, 'caller.js')).href;
const importUrl = (name: string) => () => import(pathToFileURL(path.join(dir, name)).href);
const refuseImport = () => Promise.reject(new Error('import() taken where require() could load the module'));

describe('lazy', () => {
  it('loads a built module and what it imports through require(), never calling import()', async () => {
    const mod = await lazy(caller, './plain.js', refuseImport);
    expect((mod as { answer: number }).answer).toBe(42);
  });

  it('falls back to import() for a module require() refuses (top-level await)', async () => {
    const mod = (await lazy(caller, './awaits.js', importUrl('awaits.js'))) as { answer: number };
    expect(mod.answer).toBe(43);
  });

  it("passes a module's own error on, instead of trying import() after it", async () => {
    await expect(lazy(caller, './throws.js', refuseImport)).rejects.toThrow('broken at load');
  });

  it('imports from TypeScript sources (the tests), where no .js file exists to require', async () => {
    const viaImport = () => Promise.resolve({ fromImport: true });
    await expect(lazy(pathToFileURL(path.join(ROOT, 'src', 'cli', 'execute.ts')).href, './commands.js', viaImport)).resolves.toEqual({ fromImport: true });
  });

  it('every call site requires the very module its import() fallback names, and is written one way', () => {
    const sites: string[] = [];
    const walk = (rel: string) => {
      for (const e of readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
        const file = `${rel}/${e.name}`;
        if (e.isDirectory()) walk(file);
        else if (e.name.endsWith('.ts')) {
          for (const m of readFileSync(path.join(ROOT, file), 'utf8').matchAll(/\blazy\((.*)/g)) {
            const call = /^import\.meta\.url, '([^']+)', \(\) => import\('([^']+)'\)\)/.exec(m[1]!);
            sites.push(call && call[1] === call[2] ? 'same' : `${file}: ${m[0]}`);
          }
        }
      }
    };
    walk('src');
    expect(sites.length).toBeGreaterThan(10);
    expect(sites.filter((c) => c !== 'same')).toEqual([]);
  });
});
