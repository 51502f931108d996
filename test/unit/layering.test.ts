/**
 * Layering: the lower layers (lib/format, lib/store, lib/pg, lib/manifest, lib/topology) never
 * import from the higher ones (lib/export, lib/import, lib/cli, lib/demo, lib/maintenance) nor
 * from lib/index.ts. Every module reference counts: `import`, `import type`, `export … from`,
 * dynamic `import()`, `typeof import()` types and `require()`. Parsed with the TypeScript parser,
 * not a regular expression, so comments and strings do not count.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LOWER = ['lib/format', 'lib/store', 'lib/pg', 'lib/manifest', 'lib/topology', 'lib/segment', 'lib/crypto'];
const HIGHER = ['lib/export', 'lib/import', 'lib/cli', 'lib/demo', 'lib/maintenance', 'lib/index.ts'];

/**
 * Known violations, as `from -> to`: none. An entry that no longer occurs fails the test, so
 * one added for a transition cannot linger.
 */
const ALLOWED = new Set<string>();

/** Every module specifier a source file refers to, by any of the forms above. */
function moduleReferences(fileName: string, text: string): string[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      out.push(n.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference) && ts.isStringLiteral(n.moduleReference.expression)) {
      out.push(n.moduleReference.expression.text);
    } else if (ts.isCallExpression(n) && (n.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(n.expression) && n.expression.text === 'require'))) {
      const a = n.arguments[0];
      // A computed specifier cannot be checked: refuse it rather than let it through.
      out.push(a && ts.isStringLiteralLike(a) ? a.text : `<computed ${a ? a.getText(sf) : ''}>`);
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      out.push(n.argument.literal.text);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

function filesUnder(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts'))
    .map((d) => path.relative(root, path.join(d.parentPath, d.name)).split(path.sep).join('/'))
    .sort();
}

/** `lib/…` path a relative specifier points at (`.js` → `.ts`), or undefined for packages. */
function resolve(from: string, spec: string): string | undefined {
  if (spec.startsWith('<computed')) return spec;
  if (!spec.startsWith('.')) return undefined;
  return path.posix.normalize(path.posix.join(path.posix.dirname(from), spec)).replace(/\.js$/, '.ts');
}

const isHigher = (p: string) => p.startsWith('<computed') || HIGHER.some((h) => p === h || p.startsWith(`${h}/`));

describe('layering', () => {
  it('finds every kind of module reference', () => {
    const refs = moduleReferences('x.ts', `
      import a from './a.js';
      import type { B } from '../export/b.js';
      import { type C } from './c.js';
      import './side-effect.js';
      export { d } from './d.js';
      export * from './e.js';
      export type { F } from './f.js';
      import g = require('./g.js');
      type H = typeof import('./h.js');
      const i = await import('./i.js');
      const j = require('./j.js');
      const k = await import(name);
      // import nope from './comment.js';
      const s = "import nope from './string.js'";
    `);
    expect(refs.sort()).toEqual(['../export/b.js', './a.js', './c.js', './d.js', './e.js', './f.js', './g.js', './h.js', './i.js', './j.js', './side-effect.js', '<computed name>'].sort());
  });

  it('no lower-layer file imports a higher layer', () => {
    const violations: string[] = [];
    let checked = 0;
    for (const dir of LOWER) {
      const files = filesUnder(dir);
      expect(files.length, dir).toBeGreaterThan(0);
      for (const f of files) {
        for (const spec of moduleReferences(f, readFileSync(path.join(root, f), 'utf8'))) {
          const target = resolve(f, spec);
          if (target === undefined) continue;
          checked++;
          if (isHigher(target)) violations.push(`${f} -> ${target}`);
        }
      }
    }
    expect(checked).toBeGreaterThan(50); // the relative imports were found and resolved
    expect(violations.filter((v) => !ALLOWED.has(v))).toEqual([]);
    // An allowed entry that no longer occurs must be deleted, so it cannot hide a new one.
    expect([...ALLOWED].filter((a) => !violations.includes(a))).toEqual([]);
  });
});
