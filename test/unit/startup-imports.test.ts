/**
 * What every CLI run and every `import 'segferry'` loads before any work: the static imports
 * reachable from lib/cli/main.ts and lib/index.ts. The heavy packages (apache-arrow ≈ 150
 * files, the AWS SDK, the zstd WebAssembly) must load on first use only: a static import of
 * lib/format/arrow-codecs.ts from the importer once cost every TEXT export ≈ 0.2 CPU-s of
 * start-up (issue 17). Type-only imports and dynamic `import()` do not count.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// cli-progress (≈ 20 files with its dependencies) draws the live display only.
const LAZY = [/^apache-arrow(\/|$)/, /^@aws-sdk\//, /^@bokuweb\/zstd-wasm/, /^@foxglove\/wasm-zstd/, /^cli-progress$/];

/** Specifiers of the statements that load a module when this one loads (not `import type`). */
function staticImports(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(path.join(root, file), 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier)) {
      const c = st.importClause;
      const typeOnly = c !== undefined && (c.isTypeOnly || (!c.name && c.namedBindings !== undefined && ts.isNamedImports(c.namedBindings) && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)));
      if (!typeOnly) out.push(st.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(st) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier) && !st.isTypeOnly) {
      out.push(st.moduleSpecifier.text);
    }
  }
  return out;
}

/** Every package reached through static imports from `entry`, with one path to it, and every file of ours reached (with one path). */
function reached(entry: string): { pkgs: Map<string, string[]>; files: Map<string, string[]> } {
  const seen = new Set<string>([entry]);
  const queue: string[][] = [[entry]];
  const pkgs = new Map<string, string[]>();
  const files = new Map<string, string[]>([[entry, [entry]]]);
  while (queue.length > 0) {
    const chain = queue.shift()!;
    const file = chain[chain.length - 1]!;
    for (const spec of staticImports(file)) {
      if (spec.startsWith('.')) {
        const next = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts');
        if (!seen.has(next)) {
          seen.add(next);
          queue.push([...chain, next]);
          files.set(next, [...chain, next]);
        }
      } else if (!pkgs.has(spec)) {
        pkgs.set(spec, chain);
      }
    }
  }
  return { pkgs, files };
}

describe('start-up imports', () => {
  for (const entry of ['lib/cli/main.ts', 'lib/index.ts']) {
    it(`${entry} loads no heavy package before it is used`, () => {
      const { pkgs } = reached(entry);
      expect(pkgs.has('pg')).toBe(true); // the walk does reach packages
      expect(pkgs.has('node:crypto')).toBe(true); // and built-in modules
      const heavy = [...pkgs].filter(([p]) => LAZY.some((re) => re.test(p))).map(([p, chain]) => `${p} via ${chain.join(' → ')}`);
      expect(heavy).toEqual([]);
    });
  }

  // An export runs through main.ts: the other commands' modules load when those commands run.
  // pg_dump's side (lib/ddl and the PostgreSQL launcher) loads only when an export takes the DDL.
  it('lib/cli/main.ts loads the import, copy, demo and maintenance commands, and the DDL capture, only when they run', () => {
    const { files } = reached('lib/cli/main.ts');
    expect(files.has('lib/export/export.ts')).toBe(true); // the walk does reach our files
    const eager = [...files].filter(([f]) => /^lib\/(import|copy|demo|maintenance|ddl|launch)\//.test(f) || /^lib\/cli\/(import|copy|cleanup|check|replicate)\.ts$/.test(f)).map(([f, chain]) => `${f} via ${chain.join(' → ')}`);
    expect(eager).toEqual([]);
  });

  // What an export to a directory in TEXT does not use loads when a run uses it (issue 17: each
  // module costs start-up CPU, ≈ 0.3 ms per file and more for large ones; a static import of
  // these cost every export ≈ 15 ms of its ≈ 60 ms of our modules): encryption, compression
  // (zstd), COPY BINARY objects, the worker threads (node:worker_threads), Citus and static
  // topologies, plan files and held snapshots.
  it('lib/cli/main.ts loads the optional parts of an export only when they are used', () => {
    const { files, pkgs } = reached('lib/cli/main.ts');
    const optional = /^lib\/(crypto\/(keys|envelope|objects|kms)|format\/zstd|segment\/(compressed|binary)|export\/(threads|worker|parts|hold)|topology\/(citus|static)|cli\/parts)\.ts$/;
    const eager = [...files].filter(([f]) => optional.test(f)).map(([f, chain]) => `${f} via ${chain.join(' → ')}`);
    expect(eager).toEqual([]);
    // node:zlib is not on this list: its crc32 is the default object checksum (lib/manifest/digest.ts).
    const builtins = [...pkgs].filter(([p]) => p === 'node:worker_threads').map(([p, chain]) => `${p} via ${chain.join(' → ')}`);
    expect(builtins).toEqual([]);
  });
});
