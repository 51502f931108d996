/**
 * Reject limits (issue 18), the parts without a server: which errors a row can cause, the line
 * hint, the shared budget, the rejects key rule and who owns rejects objects.
 */
import { describe, expect, it } from 'vitest';
import { RejectLimitError } from '../../lib/errors.js';
import { isOwnedKey, ownedStems } from '../../lib/export/ownership.js';
import { checkRejectOptions, copyErrorLine, isRowError, RejectBudget, RejectTally } from '../../lib/import/rejects.js';
import { RowHasher } from '../../lib/format/row-hash.js';
import { isControlKey, isRejectsKey, isRejectsPartialKey, isSegferryKey, rejectsKey, rejectsObjectOf, segmentStemOf } from '../../lib/manifest/keys.js';
import type { Manifest } from '../../lib/manifest/types.js';

const pgErr = (code: string, where?: string) => Object.assign(new Error(`e ${code}`), { code, ...(where ? { where } : {}) });

describe('isRowError: only what a row can cause', () => {
  it('data exceptions (class 22) and integrity violations (class 23)', () => {
    for (const c of ['22001', '22003', '22021', '22P02', '22P04', '22P05', '23502', '23505', '23514', '23503']) expect(isRowError(pgErr(c)), c).toBe(true);
  });
  it('not connection loss, permissions, a missing table, a cancel, socket errors or segferry errors', () => {
    for (const c of ['08006', '42501', '42P01', '57014', '57P01', '25P02', 'ECONNRESET']) expect(isRowError(pgErr(c)), c).toBe(false);
    expect(isRowError(new RejectLimitError('x', { sqlState: '23514' }))).toBe(false);
    expect(isRowError(undefined)).toBe(false);
  });
});

describe('copyErrorLine reads the line a COPY error names', () => {
  it('with or without a column, and ignores other context lines', () => {
    expect(copyErrorLine(pgErr('23514', 'COPY items, line 17: "17\tx\t-17"'))).toBe(17);
    expect(copyErrorLine(pgErr('22001', 'COPY codes, line 3, column code: "toolong"'))).toBe(3);
    expect(copyErrorLine(pgErr('23503', 'SQL statement "SELECT 1"\nCOPY t, line 2'))).toBe(2);
    // A value that mentions a line does not move the hint: the first match on the COPY line wins.
    expect(copyErrorLine(pgErr('22001', 'COPY t, line 4, column c: "a, line 9"'))).toBe(4);
    expect(copyErrorLine(pgErr('23505'))).toBeUndefined();
  });
});

describe('RejectBudget', () => {
  it('counts per table over nodes and per node over tables; the row past a limit throws and is not counted', () => {
    const b = new RejectBudget({ table: 2, node: 3 });
    b.take('t1', 'dn1', 'k', pgErr('23514'));
    b.take('t1', 'dn2', 'k', pgErr('23514'));
    const e = (() => { try { b.take('t1', 'dn1', 'k9', pgErr('23514')); } catch (x) { return x as RejectLimitError; } return undefined; })();
    expect(e).toBeInstanceOf(RejectLimitError);
    expect(e!.code).toBe('ERR_REJECT_LIMIT');
    expect(e!.message).toContain('table t1: the destination refused 3 rows');
    expect(e!.message).toContain('reject limit 2');
    expect(e!).toMatchObject({ table: 't1', node: 'dn1', key: 'k9', sqlState: '23514' });
    b.take('t2', 'dn1', 'k', pgErr('22001'));
    b.take('t2', 'dn1', 'k', pgErr('22001'));
    expect(() => b.take('t3', 'dn1', 'k', pgErr('22001'))).toThrow(/node dn1: the destination refused 4 rows .*per-node reject limit 3/);
    // A failed load gives its rejects back.
    b.giveBack('t2', 'dn1', 2);
    b.take('t3', 'dn1', 'k', pgErr('22001'));
  });
  it('earlier runs count', () => {
    const b = new RejectBudget({ table: 1 });
    b.addPrior('t', 'dn1', 1);
    expect(() => b.take('t', 'dn2', 'k', pgErr('23514'))).toThrow(RejectLimitError);
  });
  it('limits are whole numbers ≥ 0; --rejects needs a limit', () => {
    expect(checkRejectOptions({})).toBe(false);
    expect(checkRejectOptions({ rejectLimit: 0 })).toBe(true);
    expect(() => checkRejectOptions({ rejectLimit: -1 })).toThrow(/whole number/);
    expect(() => checkRejectOptions({ rejectLimitPerNode: 1.5 })).toThrow(/whole number/);
    expect(() => checkRejectOptions({ rejects: '/tmp/x' })).toThrow(/needs a reject limit/);
  });
});

describe('RejectTally sums rows as the export hashed them', () => {
  it('the same copy-rowhash64 sum as the row hasher over those rows', () => {
    const rows = ['1\ta\n', '22\tbb\n', '\n'].map((r) => Buffer.from(r));
    const t = new RejectTally();
    for (const r of rows) t.add(r);
    const h = new RowHasher();
    const data = Buffer.concat(rows);
    h.update({ data, rowEnds: Uint32Array.of(4, 10, 11) });
    expect(t.count).toBe(3);
    expect(t.sum).toBe(h.result().sum);
  });
});

describe('rejects keys', () => {
  it('one key per (node, object), never a segment, control or DDL key', () => {
    const k = rejectsKey('dn1', 'orders_dn1_segment.3');
    expect(k).toBe('segferry-rejects.dn1.orders_dn1_segment.3.jsonl');
    expect(isRejectsKey(k)).toBe(true);
    expect(rejectsObjectOf(k)).toBe('orders_dn1_segment.3');
    expect(segmentStemOf(k)).toBeUndefined();
    expect(isControlKey(k) || isSegferryKey(k)).toBe(false);
    // Dots and slashes in node names are encoded: (a.b, c) and (a, b.c) differ.
    expect(rejectsKey('a.b', 'c_x_segment.0')).not.toBe(rejectsKey('a', 'b.c_x_segment.0'));
    expect(rejectsKey('a/b', 'k')).toBe('segferry-rejects.a%2Fb.k.jsonl');
    expect(isRejectsPartialKey(k + '.segferry-partial-0a1b2c')).toBe(true);
    expect(rejectsObjectOf(k + '.segferry-partial-0a1b2c')).toBe('orders_dn1_segment.3');
    for (const other of ['manifest.json', 'segferry-ddl-pre-data.sql', 'orders_dn1_segment.0', 'segferry-rejects.json', 'x/segferry-rejects.dn1.a.jsonl']) expect(isRejectsKey(other), other).toBe(false);
  });

  it('a rejects object is owned when its source object is this export\'s', () => {
    const stems = ownedStems({ manifest: { source: { nodes: [{ name: 'dn1' }] }, tables: [{ objectName: 'orders', nodes: [] }], objects: [] } as unknown as Manifest });
    expect(isOwnedKey(rejectsKey('coordinator', 'orders_dn1_segment.0'), stems)).toBe(true);
    expect(isOwnedKey(rejectsKey('coordinator', 'orders_dn1_segment.0') + '.segferry-partial-00ff', stems)).toBe(true);
    expect(isOwnedKey(rejectsKey('coordinator', 'other_dn1_segment.0'), stems)).toBe(false);
    expect(isOwnedKey(rejectsKey('coordinator', 'orders_dn1_segment.x'), stems)).toBe(false);
  });
});
