/**
 * What the CLI loads only once it knows the command (the command's module, the context, the
 * renderers). Where Node can require() an ES module (20.19 and later: the engines floor), that
 * load is synchronous: import() reads every file through four thread-pool round trips (open,
 * fstat, read, close), one level of the module graph at a time, ~10 ms of a ~110 ms rollback on the
 * 2-core machine. import() stays the way wherever require() cannot go: an older Node, a module with
 * top-level await, and the TypeScript sources the tests run (no .js file exists beside them).
 */

import { createRequire } from 'node:module';

const requireLoadsEsm = (process.features as { require_module?: boolean }).require_module === true;

// Why require() refused a module that import() still loads: top-level await, or it is being imported right now.
const IMPORT_ONLY = new Set(['ERR_REQUIRE_ASYNC_MODULE', 'ERR_REQUIRE_CYCLE_MODULE']);

/**
 * The module `specifier` names relative to `from` (the caller's `import.meta.url`). `viaImport`
 * must import the very same specifier (a test holds every call site to that): it types the result
 * and is the way wherever require() cannot go.
 */
export async function lazy<T>(from: string, specifier: string, viaImport: () => Promise<T>): Promise<T> {
  if (!requireLoadsEsm || !from.endsWith('.js')) return viaImport();
  try {
    return createRequire(from)(specifier) as T;
  } catch (err) {
    if (IMPORT_ONLY.has((err as NodeJS.ErrnoException).code ?? '')) return viaImport();
    throw err;
  }
}
