/**
 * The Arrow path on bad input: malformed COPY BINARY tuples fed to the column builders give
 * ERR_COPY_PROTOCOL, values a format cannot represent ERR_VALUE_CONVERSION, Arrow objects
 * segferry cannot read ERR_FORMAT, and misuse of the segment writer ERR_INVALID_OPTION or
 * ERR_INTERNAL. Each group has a well-formed control on the same code path.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Field, Int32, tableToIPC, tableFromArrays } from 'apache-arrow';
import { afterAll, describe, expect, it } from 'vitest';
import { BatchBuilder } from '../../lib/format/arrow/columns.js';
import { columnSpec, OID, specFromField, type PgColumn } from '../../lib/format/arrow/pgtypes.js';
import { writeNumericText } from '../../lib/format/arrow/pgtext.js';
import { openArrowObject } from '../../lib/format/arrow/decoder.js';
import { ArrowSegmentWriter } from '../../lib/format/arrow/segment-writer.js';
import { DirectoryStore } from '../../lib/store/dir.js';
import { codeOf, codeOfAsync } from './error-code.js';
import { TRAILER, binaryHeader, int2, int4, rowChunk, tuple } from './copy-bytes.js';


const col = (name: string, oid: number, typmod = -1): PgColumn => ({ name, pgType: '', oid, typmod });
const COLUMNS = [col('id', OID.int4), col('d', OID.date), col('j', OID.jsonb), col('a', 1007 /* int4[] */)];

/** int4[] as array_send writes it: ndim 1, no nulls, element oid, (count, lbound 1), elements. */
function int4Array(values: number[], lengthOf = (_: number) => 4): Buffer {
  const parts = [int4(1), int4(0), int4(OID.int4), int4(values.length), int4(1)];
  values.forEach((v, i) => { parts.push(int4(lengthOf(i)), int4(v)); });
  return Buffer.concat(parts);
}

const jsonb = (s: string) => Buffer.concat([Buffer.from([1]), Buffer.from(s)]);
const GOOD_ROW = [int4(7), int4(100), jsonb('{"a":1}'), int4Array([1, 2])];

/** Feed a binary COPY stream with `rows` (header in the first message) to a fresh builder. */
function feed(rows: Buffer[]): BatchBuilder {
  const b = new BatchBuilder(COLUMNS.map(columnSpec));
  const msgs = [...rows];
  msgs[0] = Buffer.concat([binaryHeader(), msgs[0]!]);
  const rc = rowChunk([...msgs, TRAILER]);
  b.feed(rc.data, rc.rowEnds, 0);
  return b;
}

describe('Arrow column builders on malformed COPY BINARY tuples', () => {
  it('a well-formed row becomes one Arrow row with its values', () => {
    const b = feed([tuple(GOOD_ROW)]);
    const out = b.take()!;
    expect(out.rows).toBe(1);
    const row = out.batch.get(0)!.toJSON() as Record<string, unknown>;
    expect(row.id).toBe(7);
    expect(row.j).toBe('{"a":1}');
    expect([...(row.a as Iterable<number>)]).toEqual([1, 2]);
  });

  const cases: [string, Buffer][] = [
    ['a field count that differs from the columns', tuple(GOOD_ROW.slice(0, 3))],
    ['a field count larger than the fields sent', tuple(GOOD_ROW, 5)],
    ['an int4 of 2 bytes', tuple([int2(7), ...GOOD_ROW.slice(1)])],
    ['a date of 8 bytes', tuple([GOOD_ROW[0]!, Buffer.alloc(8), ...GOOD_ROW.slice(2)])],
    ['a jsonb value without its version byte', tuple([GOOD_ROW[0]!, GOOD_ROW[1]!, Buffer.alloc(0), GOOD_ROW[3]!])],
    ['an array element of 3 bytes for int4', tuple([...GOOD_ROW.slice(0, 3), int4Array([1, 2], (i) => (i === 1 ? 3 : 4))])],
    ['an array shorter than its element count', tuple([...GOOD_ROW.slice(0, 3), int4Array([1, 2]).subarray(0, 28)])],
    ['bytes after the last field', Buffer.concat([tuple(GOOD_ROW), Buffer.from([0])])],
  ];
  for (const [what, row] of cases) {
    it(`${what}: ERR_COPY_PROTOCOL`, () => {
      expect(codeOf(() => feed([tuple(GOOD_ROW), row]))).toBe('ERR_COPY_PROTOCOL');
    });
  }

  it('a field length running past its row: ERR_COPY_PROTOCOL, not a read of the next row', () => {
    const row = tuple(GOOD_ROW);
    row.writeInt32BE(1000, 2 + 8 + 8); // the jsonb field's length (after the count and two int32 fields)
    expect(codeOf(() => feed([row, tuple(GOOD_ROW)]))).toBe('ERR_COPY_PROTOCOL');
  });

  it('a stream without the PGCOPY signature: ERR_COPY_PROTOCOL', () => {
    const b = new BatchBuilder(COLUMNS.map(columnSpec));
    const rc = rowChunk([tuple(GOOD_ROW), TRAILER]);
    expect(codeOf(() => b.feed(rc.data, rc.rowEnds, 0))).toBe('ERR_COPY_PROTOCOL');
  });
});

describe('values and objects the Arrow format cannot carry', () => {
  it('numeric text: a decimal is written, anything else is ERR_VALUE_CONVERSION', () => {
    const buf = Buffer.alloc(64);
    expect(writeNumericText(buf, 0, '-12.5')).toBeGreaterThan(8);
    for (const t of ['12a', '', '1.2.3', '--1']) expect([t, codeOf(() => writeNumericText(buf, 0, t))]).toEqual([t, 'ERR_VALUE_CONVERSION']);
  });

  it('an Arrow field without segferry type metadata: ERR_FORMAT', () => {
    const good = new Field('id', new Int32(), true, new Map([['segferry.pg_oid', '23']]));
    expect(specFromField(good).oid).toBe(23);
    expect(codeOf(() => specFromField(new Field('id', new Int32(), true)))).toBe('ERR_FORMAT');
    expect(codeOf(() => specFromField(new Field('id', new Int32(), true, new Map([['segferry.pg_oid', 'int4']]))))).toBe('ERR_FORMAT');
  });

  it('an object with the Arrow magic but garbage after it: ERR_FORMAT', async () => {
    const bytes = Buffer.concat([Buffer.from('ARROW1\0\0'), Buffer.alloc(64, 0x5a)]);
    async function* src() { yield bytes; }
    expect(await codeOfAsync(() => openArrowObject(src()))).toBe('ERR_FORMAT');
  });

  it('an Arrow object without segferry type metadata: ERR_SCHEMA_MISMATCH (as before)', async () => {
    // Laid out as segferry's objects are read: the 8-byte magic, then the IPC messages.
    const ipc = Buffer.concat([Buffer.from('ARROW1\0\0'), tableToIPC(tableFromArrays({ id: Int32Array.from([1, 2]) }), 'stream')]);
    async function* src() { yield ipc; }
    expect(await codeOfAsync(() => openArrowObject(src()))).toBe('ERR_SCHEMA_MISMATCH');
  });
});

describe('segment writer misuse', () => {
  const dirs: string[] = [];
  afterAll(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });

  async function writer(cap = 1 << 20) {
    const root = await mkdtemp(path.join(os.tmpdir(), 'segferry-unit-'));
    dirs.push(root);
    return new ArrowSegmentWriter({ store: new DirectoryStore(root), keyOf: (n) => `t_dn1_segment.${n}`, cap, table: 'public.t', node: 'dn1' });
  }

  it('a segment size of 0 is ERR_INVALID_OPTION', async () => {
    expect(await codeOfAsync(() => writer(0))).toBe('ERR_INVALID_OPTION');
  });

  it('write before beginCopy is ERR_INTERNAL', async () => {
    const w = await writer();
    expect(await codeOfAsync(() => w.write(rowChunk([binaryHeader()])))).toBe('ERR_INTERNAL');
  });

  it('a COPY stream that ends without its trailer is ERR_COPY_PROTOCOL; with it, one object is stored', async () => {
    const ok = await writer();
    await ok.beginCopy(COLUMNS);
    await ok.write(rowChunk([Buffer.concat([binaryHeader(), tuple(GOOD_ROW)]), TRAILER]));
    const stored = await ok.finish();
    expect(stored.map((s) => [s.key, s.rows])).toEqual([['t_dn1_segment.0', 1]]);

    const w = await writer();
    await w.beginCopy(COLUMNS);
    await w.write(rowChunk([Buffer.concat([binaryHeader(), tuple(GOOD_ROW)])]));
    expect(await codeOfAsync(() => w.finish())).toBe('ERR_COPY_PROTOCOL');
  });
});
