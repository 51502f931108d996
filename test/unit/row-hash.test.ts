/**
 * The export's row checksum (lib/format/row-hash.ts): the documented algorithm, written again
 * here from its doc comment, gives the same figures; the checksum depends on the multiset of
 * rows only (not on chunking or order); a one-byte change always changes it; the COPY BINARY
 * header and trailer are not rows. Both engines (JavaScript, WebAssembly: lib/format/row-hash.wat)
 * are checked against the plain reference (test/helpers/row-hash-ref.ts).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { RowHasher, ROW_HASH_ALGORITHM, WASM_DATA_AT, WASM_DATA_MAX, WASM_ENDS_MAX, addRowHashSums } from '../../lib/format/row-hash.js';
import { ROW_HASH_WASM } from '../../lib/format/row-hash-wasm.js';
import { assembleRowHashWasm, rowHashWasmSource } from '../../bench/build-wasm.js';
import type { RowChunk } from '../../lib/pg/copy-out.js';
import { refChecksum, refRowHash } from '../helpers/row-hash-ref.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Deterministic pseudo-random bytes. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

function randomRows(count: number, seed: number, maxLen = 80): Buffer[] {
  const r = rng(seed);
  const rows: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const len = i < maxLen ? i : r() % maxLen; // every length 0..maxLen-1 at least once
    const b = Buffer.alloc(len);
    for (let k = 0; k < len; k++) b[k] = r() & 0xff;
    rows.push(b);
  }
  return rows;
}

/** Rows into chunks of the given sizes (in rows), as copyOut yields them: concatenated bytes plus row ends. */
function chunked(rows: Buffer[], sizes: number[]): RowChunk[] {
  const out: RowChunk[] = [];
  let i = 0;
  let k = 0;
  while (i < rows.length) {
    const n = Math.max(1, Math.min(sizes[k++ % sizes.length]!, rows.length - i));
    const part = rows.slice(i, i + n);
    // An offset inside a larger buffer: reads must not depend on alignment.
    const pad = k % 4;
    const data = Buffer.concat([Buffer.alloc(pad), ...part]).subarray(pad);
    let e = 0;
    out.push({ data, rowEnds: Uint32Array.from(part.map((p) => (e += p.length))) });
    i += n;
  }
  return out;
}

type Engine = 'js' | 'wasm';

function hashWith(engine: Engine, cs: RowChunk[], binary = false): ReturnType<RowHasher['result']> {
  const h = new RowHasher(binary, engine);
  for (const c of cs) h.update(c);
  return h.result();
}

describe.each(['js', 'wasm'] as const)('RowHasher (copy-rowhash64), engine %s', (engine) => {
  const hashAll = (cs: RowChunk[], binary = false) => hashWith(engine, cs, binary);
  const rows = randomRows(3000, 7);

  it('computes what its doc comment defines', () => {
    expect(hashAll(chunked(rows, [1000]))).toEqual({ ...refChecksum(rows), algorithm: ROW_HASH_ALGORITHM });
    // Pinned: manifests record these figures, so the definition must never drift.
    expect(hashAll(chunked([Buffer.from('1\tone\n'), Buffer.from('2\ttwo\n'), Buffer.from('')], [3]))).toEqual({
      rows: 3, sum: '2136940908811061105', algorithm: 'copy-rowhash64',
    });
    expect(refRowHash(Buffer.from('hello, world\n')).toString(16)).toBe('7b3318462da622d5');
  });

  it('does not depend on how rows are split into chunks, nor on their order', () => {
    const want = hashAll(chunked(rows, [rows.length]));
    for (const sizes of [[1], [2, 3, 5], [7, 1, 64], [999, 1]]) expect(hashAll(chunked(rows, sizes))).toEqual(want);
    const r = rng(99);
    const shuffled = [...rows];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = r() % (i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    expect(hashAll(chunked(shuffled, [13, 200]))).toEqual(want);
    // Parts add up to the whole (parallel nodes).
    const a = hashAll(chunked(rows.slice(0, 1234), [100]));
    const b = hashAll(chunked(rows.slice(1234), [100]));
    expect({ rows: a.rows + b.rows, sum: addRowHashSums(a.sum, b.sum) }).toEqual({ rows: want.rows, sum: want.sum });
  });

  it('changes when any one byte of any one row changes, and when a row is added or dropped', () => {
    const want = hashAll(chunked(rows, [300])).sum;
    const r = rng(3);
    let tried = 0;
    for (let i = 0; i < rows.length && tried < 400; i += 7) {
      if (rows[i]!.length === 0) continue;
      tried++;
      const changed = rows.map((x) => Buffer.from(x));
      const pos = r() % changed[i]!.length;
      changed[i]![pos] = (changed[i]![pos]! ^ (1 << (r() % 8))) & 0xff;
      expect(hashAll(chunked(changed, [300])).sum, `row ${i} byte ${pos}`).not.toBe(want);
    }
    expect(tried).toBeGreaterThan(100);
    expect(hashAll(chunked(rows.slice(1), [300])).sum).not.toBe(want);
    expect(hashAll(chunked([...rows, Buffer.from('\n')], [300])).sum).not.toBe(want);
    // Trailing zero bytes are not padding: the length is part of the hash.
    expect(hashAll(chunked([Buffer.from('ab')], [1])).sum).not.toBe(hashAll(chunked([Buffer.from('ab\0')], [1])).sum);
  });

  it('equals the reference for every row length 0–300, every start alignment, and chunks of 0–3 rows', () => {
    const r = rng(11);
    const lens = Array.from({ length: 301 }, (_, n) => n);
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => r() & 0xff));
    // Each length alone, at each of 8 byte offsets into its buffer (word reads at any alignment).
    for (const n of lens) {
      const row = bytes(n);
      for (let pad = 0; pad < 8; pad++) {
        const data = Buffer.concat([bytes(pad), row]).subarray(pad);
        const h = new RowHasher(false, engine);
        h.update({ data, rowEnds: Uint32Array.of(n) });
        expect(h.result(), `length ${n}, offset ${pad}`).toEqual({ ...refChecksum([row]), algorithm: ROW_HASH_ALGORITHM });
      }
    }
    // Neighbouring rows of unequal lengths (one row ends within the other's words), in chunks
    // of 0, 1, 2 and 3 rows, odd and even counts.
    const rows = [...lens, ...lens.map((n) => 300 - n)].map(bytes);
    for (const count of [rows.length, rows.length - 1]) {
      const some = rows.slice(0, count);
      const want = { ...refChecksum(some), algorithm: ROW_HASH_ALGORITHM };
      for (const sizes of [[1], [2], [3], [3, 2, 1], [2, 1, 3, 2]]) {
        const h = new RowHasher(false, engine);
        for (const c of chunked(some, sizes)) {
          h.update(c);
          h.update({ data: c.data.subarray(0, 0), rowEnds: new Uint32Array(0) });
        }
        expect(h.result(), `${count} rows in chunks of ${sizes.join(',')}`).toEqual(want);
      }
    }
  });

  it('binary: header, tuples and trailer in one chunk, at every tuple count 0–3', () => {
    const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
    const trailer = Buffer.from([0xff, 0xff]);
    const tuples = randomRows(40, 5, 40).map((x) => Buffer.concat([Buffer.from([0, 1, 0, 0, 0, x.length]), x]));
    for (let n = 0; n <= 3; n++) {
      for (let at = 0; at + n <= tuples.length; at += 7) {
        const some = tuples.slice(at, at + n);
        // The server's messages: header and first tuple in one, then one per tuple, then the trailer.
        const msgs = n === 0 ? [Buffer.concat([header, trailer])] : [Buffer.concat([header, some[0]!]), ...some.slice(1), trailer];
        expect(hashAll(chunked(msgs, [msgs.length]), true), `${n} tuples from ${at}`).toEqual({ ...refChecksum(some), algorithm: ROW_HASH_ALGORITHM });
      }
    }
  });

  it('binary: skips the COPY header and the trailer, whichever messages carry them', () => {
    const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.from([0, 0, 0, 0, 0, 0, 0, 4]), Buffer.from('ext!')]);
    const tuples = rows.slice(0, 50).map((x) => Buffer.concat([Buffer.from([0, 1, 0, 0, 0, x.length]), x]));
    const trailer = Buffer.from([0xff, 0xff]);
    const want = refChecksum(tuples);
    // Header in front of the first tuple, trailer as the last message; two streams in a row.
    const stream = [Buffer.concat([header, tuples[0]!]), ...tuples.slice(1), trailer];
    for (const sizes of [[1], [3], [stream.length]]) {
      const h = new RowHasher(true, engine);
      for (const c of chunked(stream, sizes)) h.update(c);
      expect(h.inCopy).toBe(false);
      for (const c of chunked(stream, sizes)) h.update(c);
      expect(h.result()).toEqual({ rows: 2 * want.rows, sum: addRowHashSums(want.sum, want.sum), algorithm: ROW_HASH_ALGORITHM });
    }
    // An empty table: header and trailer in one message.
    expect(hashAll(chunked([Buffer.concat([header, trailer])], [1]), true)).toEqual({ rows: 0, sum: '0', algorithm: ROW_HASH_ALGORITHM });
    expect(() => hashAll(chunked([Buffer.from('not a copy stream')], [1]), true)).toThrow(/PGCOPY signature/);
  });
});

describe('RowHasher in WebAssembly (lib/format/row-hash.wat)', () => {
  const hashAll = (cs: RowChunk[], binary = false) => hashWith('wasm', cs, binary);
  it('embeds exactly the module that row-hash.wat assembles to (npm run build:wasm)', async () => {
    const bytes = await assembleRowHashWasm();
    expect(Buffer.from(bytes).toString('base64')).toBe(ROW_HASH_WASM);
    expect(rowHashWasmSource(bytes)).toBe(await readFile(new URL('../../lib/format/row-hash-wasm.ts', import.meta.url), 'utf8'));
  });

  it('a chunk larger than the module\'s memory is hashed in parts of whole rows', () => {
    // 5 MiB of rows of 0–2000 bytes in one chunk: parts end where a row ends.
    const rows = randomRows(5200, 21, 2000);
    const bytes = rows.reduce((a, x) => a + x.length, 0);
    expect(bytes).toBeGreaterThan(WASM_DATA_MAX + WASM_DATA_AT);
    const want = { ...refChecksum(rows), algorithm: ROW_HASH_ALGORITHM };
    expect(hashAll(chunked(rows, [rows.length]))).toEqual(want);
    // Uneven chunks around the limit too.
    expect(hashAll(chunked(rows, [1700, 3100, 400]))).toEqual(want);
  });

  it('rows longer than 64 KiB, and one longer than the memory\'s row area (hashed in pieces)', () => {
    const r = rng(5);
    const row = (n: number) => {
      const b = Buffer.alloc(n);
      for (let k = 0; k < n; k++) b[k] = r() >>> 24;
      return b;
    };
    // Lengths around the 8-byte step and the piece size, with short rows around them.
    const huge = WASM_DATA_MAX & ~7;
    const rows = [row(3), row(65_536 + 5), row(70_001), row(2 * huge + 13), row(7), row(huge), row(huge + 1), row(huge + 8), row(WASM_DATA_MAX + 1), row(0)];
    const want = { ...refChecksum(rows), algorithm: ROW_HASH_ALGORITHM };
    expect(hashAll(chunked(rows, [rows.length]))).toEqual(want);
    expect(hashAll(chunked(rows, [1, 2]))).toEqual(want);
    for (const x of rows) expect(hashAll(chunked([x], [1])), `length ${x.length}`).toEqual({ ...refChecksum([x]), algorithm: ROW_HASH_ALGORITHM });
  });

  it('a chunk of 100,000 one-byte rows, and more row ends than the memory holds', () => {
    const ones = Array.from({ length: 100_000 }, (_, i) => Buffer.of(i & 0xff));
    expect(hashAll(chunked(ones, [ones.length]))).toEqual({ ...refChecksum(ones), algorithm: ROW_HASH_ALGORITHM });
    // Past the row-end area: empty and one-byte rows, split by count.
    const many = Array.from({ length: WASM_ENDS_MAX + 1001 }, (_, i) => Buffer.alloc(i % 2, i & 0xff));
    expect(hashAll(chunked(many, [many.length]))).toEqual({ ...refChecksum(many), algorithm: ROW_HASH_ALGORITHM });
  });

  it('binary: header, many tuples and trailer in one chunk larger than the memory', () => {
    const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
    const tuples = randomRows(4000, 9, 4000).map((x) => Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 0]), x]));
    for (const t of tuples) t.writeUInt32BE(t.length - 6, 2);
    const msgs = [Buffer.concat([header, tuples[0]!]), ...tuples.slice(1), Buffer.from([0xff, 0xff])];
    expect(msgs.reduce((a, x) => a + x.length, 0)).toBeGreaterThan(WASM_DATA_MAX);
    expect(hashAll(chunked(msgs, [msgs.length]), true)).toEqual({ ...refChecksum(tuples), algorithm: ROW_HASH_ALGORITHM });
  });
});

describe('RowHasher without WebAssembly (node --jitless)', () => {
  // Under --jitless V8 has no WebAssembly (globalThis.WebAssembly is undefined): the default
  // engine must then be the JavaScript loop, with the same sums. A child process, since the
  // flag cannot be set in this one; it loads the source through tsx as the tests do.
  it('the default engine falls back to JavaScript with the same sums; an explicit \'wasm\' fails with a typed error', () => {
    const rows = randomRows(500, 31, 200);
    const sizes = [1, 7, 64, 300];
    const script = `
      const { RowHasher } = await import(${JSON.stringify(pathToFileURL(path.join(root, 'lib/format/row-hash.ts')).href)});
      const rows = JSON.parse(process.argv[1]).map((r) => Buffer.from(r, 'base64'));
      const sizes = ${JSON.stringify(sizes)};
      const hasher = new RowHasher();
      for (let i = 0, k = 0; i < rows.length; k++) {
        const part = rows.slice(i, i + sizes[k % sizes.length]);
        let e = 0;
        hasher.update({ data: Buffer.concat(part), rowEnds: Uint32Array.from(part.map((p) => (e += p.length))) });
        i += part.length;
      }
      let wasm;
      try { new RowHasher(false, 'wasm').update({ data: Buffer.from('x\\n'), rowEnds: Uint32Array.of(2) }); wasm = 'no error'; } catch (e) { wasm = { name: e.name, code: e.code }; }
      process.stdout.write(JSON.stringify({ webAssembly: typeof WebAssembly, sum: hasher.result(), wasm }));
    `;
    const r = spawnSync(process.execPath, ['--jitless', '--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(rows.map((b) => b.toString('base64')))], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toMatch(/TypeError|Error:/);
    expect(r.status).toBe(0);
    const got = JSON.parse(r.stdout) as { webAssembly: string; sum: unknown; wasm: unknown };
    expect(got.webAssembly).toBe('undefined');
    const cs = chunked(rows, sizes);
    expect(got.sum).toEqual(hashWith('js', cs));
    expect(got.sum).toEqual(hashWith('wasm', cs));
    expect(got.sum).toEqual({ ...refChecksum(rows), algorithm: ROW_HASH_ALGORITHM });
    expect(got.wasm).toEqual({ name: 'PrerequisiteError', code: 'ERR_PREREQUISITE' });
  }, 60_000);
});
