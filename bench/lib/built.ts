// The library as users run it: the built dist/, not the TypeScript sources through tsx. It
// matters for worker threads: from sources, each exporter thread boots tsx's loader and
// transforms the modules again (≈ 0.4 CPU-s more per thread than from dist/), which users never
// pay. A section that measures threads loads the library with loadBuiltLibrary().
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The newest modification time of the files under `dir` whose name ends with `ext`. */
function newest(dir: string, ext: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(ext)) t = Math.max(t, statSync(path.join(e.parentPath, e.name)).mtimeMs);
  }
  return t;
}

/** Whether dist/ is missing or older than a source under lib/ (tsc rewrites every output). */
export function distStale(): boolean {
  try {
    return statSync(path.join(ROOT, 'dist/index.js')).mtimeMs < newest(path.join(ROOT, 'lib'), '.ts');
  } catch {
    return true;
  }
}

/**
 * The public API from dist/index.js, building dist/ first (tsc) when it is missing or older
 * than lib/ (`npm run bench` has built it already). Typed as the sources' index.
 */
export async function loadBuiltLibrary(): Promise<typeof import('../../lib/index.js')> {
  if (distStale()) {
    process.stderr.write('building dist/ (tsc): the section measures the built library\n');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('tsc failed: cannot build dist/');
  }
  return import(pathToFileURL(path.join(ROOT, 'dist/index.js')).href) as Promise<typeof import('../../lib/index.js')>;
}

/** A module of the built library by its path under dist/ (e.g. `export/threads.js`), typed by the caller. */
export async function loadBuiltModule<T>(rel: string): Promise<T> {
  if (distStale()) await loadBuiltLibrary();
  return import(pathToFileURL(path.join(ROOT, 'dist', rel)).href) as Promise<T>;
}
