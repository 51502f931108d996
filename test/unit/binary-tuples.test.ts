/** BinaryTuples: the tuples of COPY BINARY row chunks, without each stream's header and trailer. */
import { describe, expect, it } from 'vitest';
import { BinaryTuples, COPY_BINARY_HEADER, COPY_BINARY_TRAILER } from '../../lib/pg/copy-binary.js';

/** A tuple of one int4 field. */
const tuple = (v: number) => { const b = Buffer.alloc(10); b.writeInt16BE(1, 0); b.writeInt32BE(4, 2); b.writeInt32BE(v, 6); return b; };
/** A chunk of messages (each a Buffer) as the COPY reader hands it out. */
const chunk = (msgs: Buffer[]) => {
  const ends = new Uint32Array(msgs.length);
  let e = 0;
  msgs.forEach((m, i) => { e += m.length; ends[i] = e; });
  return { data: Buffer.concat(msgs), rowEnds: ends };
};
const tuplesOf = (t: BinaryTuples, c: { data: Buffer; rowEnds: Uint32Array }) => { const r = t.range(c.data, c.rowEnds); return c.data.subarray(r.start, r.end); };

describe('BinaryTuples', () => {
  it('drops the header inside the first message and the trailer message, over several chunks and streams', () => {
    const t = new BinaryTuples();
    const out: Buffer[] = [];
    for (let s = 0; s < 2; s++) {
      out.push(tuplesOf(t, chunk([Buffer.concat([COPY_BINARY_HEADER, tuple(1 + s * 10)]), tuple(2 + s * 10)])));
      expect(t.inCopy).toBe(true);
      out.push(tuplesOf(t, chunk([tuple(3 + s * 10), COPY_BINARY_TRAILER])));
      expect(t.inCopy).toBe(false);
    }
    expect(Buffer.concat(out)).toEqual(Buffer.concat([1, 2, 3, 11, 12, 13].map(tuple)));
  });

  it('yields nothing for an empty stream (header and trailer in one message)', () => {
    const t = new BinaryTuples();
    expect(tuplesOf(t, chunk([Buffer.concat([COPY_BINARY_HEADER, COPY_BINARY_TRAILER])])).length).toBe(0);
    expect(t.inCopy).toBe(false);
  });

  it('refuses a stream without the signature', () => {
    expect(() => new BinaryTuples().range(...Object.values(chunk([tuple(1)])) as [Buffer, Uint32Array])).toThrow(/PGCOPY signature/);
  });
});
