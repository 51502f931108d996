import { describe, expect, it } from 'vitest';
import { CopyRowSplitter, type CopyRowFormat } from '../../lib/pg/copy-rows.js';
import { COPY_BINARY_HEADER, COPY_BINARY_TRAILER } from '../../lib/pg/copy-binary.js';

/** Split `data` into chunks at every cut and return the rows found (as strings, latin1) with offsets. */
function split(f: CopyRowFormat, data: Buffer, cuts: number[]): { rows: string[]; offsets: number[] } {
  const s = new CopyRowSplitter(f);
  const rows: string[] = [];
  const offsets: number[] = [];
  let at = 0;
  for (const c of [...cuts, data.length]) {
    for (const r of s.push(data.subarray(at, c))) { rows.push(r.data.toString('latin1')); offsets.push(r.offset); }
    at = c;
  }
  s.end();
  return { rows, offsets };
}

/** Every way to cut `data` into three pieces (and a few single-byte chunkings). */
function* cutsOf(n: number): Generator<number[]> {
  yield [];
  for (let a = 0; a <= n; a++) for (let b = a; b <= n; b += 3) yield [a, b];
  yield Array.from({ length: n }, (_, i) => i);
}

function tuple(fields: (Buffer | null)[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0, fields.length])];
  for (const f of fields) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(f === null ? -1 : f.length);
    parts.push(len);
    if (f) parts.push(f);
  }
  return Buffer.concat(parts);
}

describe('CopyRowSplitter finds the rows of stored COPY data however it is chunked', () => {
  it('text: a raw newline ends a row (escaped newlines are \\n)', () => {
    const rows = ['1\ta\\nb\n', '2\t\\N\n', '\n', '3\tlast\n'];
    const data = Buffer.from(rows.join(''), 'latin1');
    for (const cuts of cutsOf(data.length)) expect(split({ kind: 'text' }, data, cuts).rows).toEqual(rows);
    expect(split({ kind: 'text' }, data, []).offsets).toEqual([0, 7, 12, 13]);
  });

  it('csv: newlines and doubled quotes inside quotes, a header line skipped', () => {
    const header = 'id,v\n';
    const rows = ['1,"a\nb"\n', '2,"say ""hi""\n, ok"\n', '3,\n', '4,""\n'];
    const data = Buffer.from(header + rows.join(''), 'latin1');
    for (const cuts of cutsOf(data.length)) expect(split({ kind: 'csv', header: true }, data, cuts).rows).toEqual(rows);
    expect(split({ kind: 'csv', header: true }, data, []).offsets[0]).toBe(header.length);
  });

  it('csv with a distinct escape: an escaped quote does not end the quoted value', () => {
    const rows = ['1,"a\\"\nb"\n', '2,"c\\\\"\n', '3,x\n'];
    const data = Buffer.from(rows.join(''), 'latin1');
    for (const cuts of cutsOf(data.length)) expect(split({ kind: 'csv', escape: '\\' }, data, cuts).rows).toEqual(rows);
  });

  it('binary: header, tuples (nulls, empty fields, zero fields), trailer', () => {
    const tuples = [tuple([Buffer.from('abc'), null]), tuple([Buffer.alloc(0), Buffer.from([0x0a, 0xff, 0xff])]), tuple([])];
    const data = Buffer.concat([COPY_BINARY_HEADER, ...tuples, COPY_BINARY_TRAILER]);
    for (const cuts of cutsOf(data.length)) expect(split({ kind: 'binary' }, data, cuts).rows).toEqual(tuples.map((t) => t.toString('latin1')));
    // A header extension is skipped too.
    const ext = Buffer.concat([COPY_BINARY_HEADER.subarray(0, 15), Buffer.from([0, 0, 0, 3, 9, 9, 9]), ...tuples, COPY_BINARY_TRAILER]);
    for (const cuts of cutsOf(ext.length)) expect(split({ kind: 'binary' }, ext, cuts).offsets).toEqual([22, 22 + tuples[0]!.length, 22 + tuples[0]!.length + tuples[1]!.length]);
  });

  it('refuses data that ends inside a row, a missing trailer and a wrong signature', () => {
    expect(() => split({ kind: 'text' }, Buffer.from('1\n2'), [])).toThrow(/inside a row/);
    expect(() => split({ kind: 'csv' }, Buffer.from('1,"a\n'), [])).toThrow(/inside a row/);
    const t = tuple([Buffer.from('x')]);
    expect(() => split({ kind: 'binary' }, Buffer.concat([COPY_BINARY_HEADER, t]), [])).toThrow(/without its trailer/);
    expect(() => split({ kind: 'binary' }, Buffer.concat([COPY_BINARY_HEADER, t.subarray(0, 5)]), [])).toThrow(/inside a tuple/);
    expect(() => split({ kind: 'binary' }, Buffer.alloc(30), [])).toThrow(/signature/);
  });
});
