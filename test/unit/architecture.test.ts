// Keeps src/ in the shape the README's map shows: each room of core/ value-imports only the ground
// and rooms below it, core/ stays small, and only adapters touch git, tar, processes and SQLite.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(import.meta.dirname, '..', '..');

/** Rooms of src/core/, lowest first. A room imports rooms on lower lines only, never its own line. */
const LEVELS: string[][] = [
  ['trust'],
  ['state'],
  ['units'],
  ['bootstrap', 'data', 'app'],
  ['activate'],
  ['build'],
  ['verify'],
  ['mutation'],
];
const MAX_GROUND_FILES = 12;
/** What only src/adapters/ may import: the outside world. */
const OUTSIDE_WORLD = new Set(['execa', 'simple-git', 'better-sqlite3', 'tar', 'node:child_process', 'child_process']);
/** core/ (ground and rooms) is below commands, cli and render; the few explained exceptions: */
const ALLOWED = new Set([
  // The log escapes control characters with render's escape: one escaping for every output path.
  'src/core/log.ts -> src/render/escape.ts',
]);

interface Import {
  spec: string;
  /** Repo-relative .ts path for a relative specifier, else null. */
  target: string | null;
  /** false for `import type`, `export type` and imports of types only: erased by tsc. */
  value: boolean;
  /** `await import(...)`: loaded only when that code runs. */
  lazy: boolean;
  line: number;
}

function importsOf(file: string, text: string): Import[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: Import[] = [];
  const add = (lit: ts.StringLiteralLike, value: boolean, lazy = false) => {
    const spec = lit.text;
    const target = spec.startsWith('.') ? path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts') : null;
    out.push({ spec, target, value, lazy, line: sf.getLineAndCharacterOfPosition(lit.getStart(sf)).line + 1 });
  };
  const visit = (n: ts.Node) => {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
      const c = n.importClause;
      const named = c?.namedBindings && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : null;
      const typeOnly = !!c && (c.isTypeOnly || (!c.name && !!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
      add(n.moduleSpecifier, !typeOnly);
    } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      const named = n.exportClause && ts.isNamedExports(n.exportClause) ? n.exportClause.elements : null;
      add(n.moduleSpecifier, !(n.isTypeOnly || (!!named && named.length > 0 && named.every((e) => e.isTypeOnly))));
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword && n.arguments[0] && ts.isStringLiteralLike(n.arguments[0])) {
      add(n.arguments[0], true, true); // a lazy import still runs the module, when it is reached
    } else if (ts.isCallExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'require' && n.arguments[0] && ts.isStringLiteralLike(n.arguments[0])) {
      add(n.arguments[0], true); // a package loaded through createRequire is imported all the same
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** 'ground', a room's name, or the top-level part of src/ a file belongs to. */
function placeOf(file: string): string {
  const parts = file.split('/');
  if (parts[1] !== 'core') return parts.length === 2 ? file : parts[1];
  return parts.length === 3 ? 'ground' : `room:${parts[2]}`;
}

/** Every broken rule of the layout, one line each naming the file and the import. */
function violations(files: Map<string, string>, levels: string[][] = LEVELS, maxGround = MAX_GROUND_FILES): string[] {
  const level = new Map(levels.flatMap((rooms, i) => rooms.map((r) => [r, i] as const)));
  const bad: string[] = [];
  const ground = [...files.keys()].filter((f) => placeOf(f) === 'ground');
  if (ground.length > maxGround) bad.push(`src/core/ holds ${ground.length} files directly (at most ${maxGround}): ${ground.join(', ')}`);
  for (const [file, text] of files) {
    const from = placeOf(file);
    if (from.startsWith('room:') && !level.has(from.slice(5))) bad.push(`${file}: room ${from.slice(5)}/ is not in LEVELS`);
    for (const imp of importsOf(file, text)) {
      if (!imp.value) continue;
      const where = `${file}:${imp.line} imports '${imp.spec}'`;
      if (OUTSIDE_WORLD.has(imp.spec) && from !== 'adapters') bad.push(`${where}: only src/adapters/ may touch the outside world`);
      if (!imp.target || !imp.target.startsWith('src/')) continue;
      const to = placeOf(imp.target);
      const inCore = from === 'ground' || from.startsWith('room:');
      if (inCore && ['commands', 'cli', 'render', 'src/cli.ts', 'src/create-context.ts'].includes(to) && !ALLOWED.has(`${file} -> ${imp.target}`)) {
        bad.push(`${where}: core/ must not depend on ${to}`);
      }
      if (!to.startsWith('room:')) continue;
      const room = to.slice(5);
      // The domain calls adapters with what it decided; an adapter that reached into a room would turn that around.
      if (from === 'adapters') bad.push(`${where}: adapters may import only core's ground, not a room (${room}/)`);
      else if (from === 'ground') bad.push(`${where}: the ground must not import a room (${room}/)`);
      else if (from.startsWith('room:') && from !== to) {
        const a = level.get(from.slice(5));
        const b = level.get(room);
        if (a === undefined || b === undefined) continue; // reported above
        if (b > a) bad.push(`${where}: ${room}/ is above ${from.slice(5)}/`);
        else if (b === a) bad.push(`${where}: ${room}/ is beside ${from.slice(5)}/ (same level)`);
      }
    }
  }
  return bad;
}

/** Modules whose text does not open with a comment saying what they are for. */
function headerless(files: Map<string, string>): string[] {
  return [...files].filter(([, text]) => !/^(#![^\n]*\n)?\s*(\/\/|\/\*)/.test(text)).map(([file]) => file);
}

function sourceFiles(): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts')) files.set(rel, readFileSync(path.join(ROOT, rel), 'utf8'));
    }
  };
  walk('src');
  return files;
}

describe('the layout checker', () => {
  it('catches each broken rule in a tiny module graph, and passes type imports and imports downwards', () => {
    const graph = new Map([
      ['src/core/errors.ts', '// ground\nexport class E {}'],
      ['src/core/layout.ts', "import { l } from './state/lock.js';\nimport type { T } from './build/b.js';"],
      ['src/core/state/lock.ts', "import { E } from '../errors.js';\nimport { type T } from '../build/b.js';"],
      ['src/core/trust/t.ts', "export { l } from '../state/lock.js';"],
      ['src/core/data/d.ts', "import { t } from '../trust/t.js';"],
      ['src/core/build/b.ts', "import { l } from '../state/lock.js';\nimport { execa } from 'execa';\nconst m = await import('../verify/v.js');"],
      ['src/core/verify/v.ts', "import { b } from '../build/b.js';\nimport { x } from '../../commands/x.js';"],
      ['src/core/odd/o.ts', "import { E } from '../errors.js';\nconst tar = require('tar');"],
      ['src/adapters/git.ts', "import { execa } from 'execa';\nimport { E } from '../core/errors.js';\nimport type { T } from '../core/build/b.js';"],
      ['src/adapters/tar.ts', "import { P } from '../core/build/b.js';"],
    ]);
    const found = violations(graph, [['state'], ['trust', 'data'], ['build'], ['verify']], 1);
    const expected = [
      'src/core/ holds 2 files directly (at most 1)',
      "src/core/layout.ts:1 imports './state/lock.js': the ground must not import a room (state/)",
      "src/core/data/d.ts:1 imports '../trust/t.js': trust/ is beside data/ (same level)",
      "src/core/build/b.ts:2 imports 'execa': only src/adapters/ may touch the outside world",
      "src/core/build/b.ts:3 imports '../verify/v.js': verify/ is above build/",
      "src/core/verify/v.ts:2 imports '../../commands/x.js': core/ must not depend on commands",
      'src/core/odd/o.ts: room odd/ is not in LEVELS',
      "src/core/odd/o.ts:2 imports 'tar': only src/adapters/ may touch the outside world",
      "src/adapters/tar.ts:1 imports '../core/build/b.js': adapters may import only core's ground, not a room (build/)",
    ];
    for (const e of expected) expect(found.some((f) => f.startsWith(e)), `missing: ${e}\nfound:\n${found.join('\n')}`).toBe(true);
    expect(found).toHaveLength(expected.length);
    expect(headerless(graph)).toEqual([...graph.keys()].slice(1));
  });
});

describe('src/ layout', () => {
  const files = sourceFiles();

  it('each room of core/ imports only the ground and rooms below it; adapters only the ground; only adapters touch the outside world', () => {
    expect(files.size).toBeGreaterThan(50);
    expect(violations(files)).toEqual([]);
  });

  it('a command line the quick parser reads loads no commander: nothing the CLI imports at start-up does', () => {
    const loaded = new Set<string>();
    const visit = (file: string) => {
      if (loaded.has(file)) return;
      loaded.add(file);
      for (const imp of importsOf(file, files.get(file) ?? '')) if (imp.value && !imp.lazy && imp.target) visit(imp.target);
    };
    visit('src/cli.ts');
    visit('src/cli/execute.ts'); // what every command loads next
    expect(loaded.has('src/cli/quick-parse.ts')).toBe(true);
    expect([...loaded].filter((f) => f === 'src/cli/commander.ts' || f === 'src/cli/program.ts')).toEqual([]);
  });

  // Enabled once every module opens with its header comment (issue 13).
  it('every module under src/ starts with a comment saying what it is for', () => {
    expect(headerless(files)).toEqual([]);
  });
});
