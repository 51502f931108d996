/**
 * The public surface: the exact runtime names lib/index.ts exports, every error class among
 * them and no error helper, and types that never name a `pg` or AWS SDK type (walked with the
 * TypeScript checker from each export, so a leak through a nested option type counts too).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as api from '../../lib/index.js';
import * as errors from '../../lib/errors.js';
import type { S3ClientLike } from '../../lib/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const EXPECTED = [
  // operations
  'planExport', 'exportTables', 'planImport', 'importTables', 'verifyImport', 'cleanup', 'readManifest', 'checkExport', 'replicateExport',
  'copyTables', 'planCopy',
  // one plan, many hosts
  'planFile', 'parsePlanFile', 'planParts', 'runPlanPart', 'finishPlan', 'encryptPlan',
  // stores
  'openStore', 'S3Store', 'DirectoryStore',
  // Arrow objects
  'openArrowObject', 'arrowCopyFromSQL',
  // client-side encryption: reading an encrypted export's objects
  'parseEncryptOption', 'readExportKey', 'decryptObject',
  // constants and the naming rule
  'VERSION', 'MANIFEST_KEY', 'MANIFEST_VERSION', 'DEFAULT_SEGMENT_SIZE', 'segmentKey',
  // errors
  'SegferryError', 'InvalidOptionError', 'ConnectError', 'AuthError', 'TableNotFoundError', 'ColumnNotFoundError',
  'TopologyError', 'DatabaseError', 'RowTooLargeError', 'BucketNotFoundError', 'StorageError', 'PrefixNotEmptyError', 'PrefixClaimedError',
  'UnfinishedExportError', 'ManifestMissingError', 'ManifestInvalidError', 'ObjectMissingError',
  'ChecksumMismatchError', 'RowCountMismatchError', 'SchemaMismatchError', 'VerifyMismatchError',
  'KeyEscapesRootError', 'AbortedError', 'PrerequisiteError', 'WorkerError', 'CopyProtocolError',
  'ValueConversionError', 'FormatError', 'InternalError', 'UntrustedInputError', 'DestinationNotEmptyError',
  'EncryptionKeyError', 'DecryptionError',
  'BinaryTypeMismatchError',
  'PgDumpError', 'DdlUnsupportedError', 'DdlRefusedError', 'DdlConflictError',
  'PlanIncompleteError',
  'RejectLimitError',
  'SnapshotGoneError',
  'holdSnapshots', 'holdUntilFinished',
  'DecompressError',
  // compressed objects
  'decompressChunks',
].sort();

describe('public API surface', () => {
  it('exports exactly the expected runtime names', () => {
    expect(Object.keys(api).sort()).toEqual(EXPECTED);
  });

  it('exports every error class of lib/errors.ts and none of its helpers', () => {
    const classes = Object.entries(errors)
      .filter(([, v]) => typeof v === 'function' && (v === errors.SegferryError || v.prototype instanceof errors.SegferryError))
      .map(([k]) => k)
      .sort();
    const exported = Object.keys(api).filter((k) => k.endsWith('Error')).sort();
    expect(exported).toEqual(classes);
    for (const helper of ['serializeError', 'reviveError', 'registerSecret', 'fromDatabaseError', 'redact']) {
      expect(errors).toHaveProperty(helper);
      expect(api).not.toHaveProperty(helper);
    }
  });

  it('every error class sets its own name and a distinct code', () => {
    const codes = new Set<string>();
    for (const k of Object.keys(api).filter((n) => n.endsWith('Error') && n !== 'SegferryError')) {
      const C = (api as unknown as Record<string, new (m: string, a?: unknown) => api.SegferryError>)[k]!;
      const e = k === 'RowTooLargeError' ? new api.RowTooLargeError('x', 1) : new C('x');
      expect(e).toBeInstanceOf(api.SegferryError);
      expect(e.name).toBe(k);
      expect(e.code).toMatch(/^ERR_[A-Z_]+$/);
      codes.add(e.code);
    }
    // RowCountMismatch shares no code with another class, so every class has its own.
    expect(codes.size).toBe(Object.keys(api).filter((n) => n.endsWith('Error')).length - 1);
  });

  it('an AWS SDK S3Client satisfies S3ClientLike (structural, no SDK type in the API)', () => {
    const client = new S3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    const like: S3ClientLike = client; // compile-time check (test/tsconfig.json)
    const store = new api.S3Store('b', 'p', {}, like);
    expect(store.url).toBe('s3://b/p/');
    store.close(); // a shared client stays open
    client.destroy();
  });

  it('package.json exports only the root entry (with types) and package.json', () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown>; types: string };
    expect(Object.keys(pkg.exports).sort()).toEqual(['.', './package.json']);
    expect(pkg.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    expect(pkg.types).toBe('./dist/index.d.ts');
  });

  it('no exported type reaches a pg or AWS SDK declaration', () => {
    const program = ts.createProgram([path.join(root, 'lib/index.ts')], {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      skipLibCheck: true,
      declaration: true,
      emitDeclarationOnly: true,
      types: ['node'],
    });
    const checker = program.getTypeChecker();
    const index = program.getSourceFile(path.join(root, 'lib/index.ts'))!;
    const moduleSymbol = checker.getSymbolAtLocation(index)!;
    const exports = checker.getExportsOfModule(moduleSymbol);
    expect(exports.length).toBeGreaterThan(EXPECTED.length);

    const FORBIDDEN = /\/node_modules\/(@aws-sdk|@smithy|pg|pg-protocol|pg-copy-streams|pg-connection-string|@types\/pg|@types\/pg-copy-streams)\//;
    // Lib and Node types are walked into only through their type arguments (Promise<X>).
    const OPAQUE = /\/node_modules\/(typescript\/lib|@types\/node)\//;
    const leaks = new Set<string>();
    const seen = new Set<ts.Type>();
    const files = (sym: ts.Symbol | undefined) => (sym?.declarations ?? []).map((d) => d.getSourceFile().fileName);

    function visit(t: ts.Type, via: string, depth: number): void {
      if (seen.has(t) || depth > 12) return;
      seen.add(t);
      const declared = [...files(t.getSymbol()), ...files(t.aliasSymbol)];
      const bad = declared.find((f) => FORBIDDEN.test(f));
      if (bad) {
        leaks.add(`${via} → ${checker.typeToString(t)} (${bad.slice(bad.indexOf('node_modules'))})`);
        return;
      }
      for (const a of t.aliasTypeArguments ?? []) visit(a, via, depth + 1);
      if (t.isUnionOrIntersection()) for (const m of t.types) visit(m, via, depth + 1);
      if ((t.flags & ts.TypeFlags.Object) && ((t as ts.ObjectType).objectFlags & ts.ObjectFlags.Reference)) {
        for (const a of checker.getTypeArguments(t as ts.TypeReference)) visit(a, via, depth + 1);
      }
      if (declared.some((f) => OPAQUE.test(f))) return;
      if (!(t.flags & ts.TypeFlags.Object)) return;
      for (const p of checker.getPropertiesOfType(t)) {
        // ES #private fields and TS private members are not part of the surface.
        if (p.name.startsWith('__#') || p.name.startsWith('#')) continue;
        const mods = p.valueDeclaration ? ts.getCombinedModifierFlags(p.valueDeclaration) : 0;
        if (mods & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
        visit(checker.getTypeOfSymbol(p), `${via}.${p.name}`, depth + 1);
      }
      for (const info of checker.getIndexInfosOfType(t)) visit(info.type, `${via}[]`, depth + 1);
      for (const sig of [...t.getCallSignatures(), ...t.getConstructSignatures()]) {
        for (const param of sig.getParameters()) visit(checker.getTypeOfSymbol(param), `${via}(${param.name})`, depth + 1);
        visit(sig.getReturnType(), `${via}()`, depth + 1);
      }
    }

    for (const sym of exports) {
      const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
      if (target.flags & ts.SymbolFlags.Value) visit(checker.getTypeOfSymbol(target), sym.name, 0);
      if (target.flags & (ts.SymbolFlags.Type)) visit(checker.getDeclaredTypeOfSymbol(target), sym.name, 0);
    }
    expect(seen.size).toBeGreaterThan(100); // the walk did reach the option and result types
    expect([...leaks]).toEqual([]);

    // What tsc emits as dist/index.d.ts (in memory): re-exports of segferry's own modules only.
    let dts = '';
    const r = program.emit(index, (name, text) => { if (name.endsWith('index.d.ts')) dts = text; }, undefined, true);
    expect(r.emitSkipped).toBe(false);
    expect(dts).toContain('export { S3Store }');
    expect(dts).not.toMatch(/@aws-sdk|@smithy|from ["']pg["']|import\(["']pg["']\)|["']pg-copy-streams["']/);
    expect(dts).not.toContain('export *');
  });
});
