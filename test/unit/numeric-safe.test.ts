import { describe, expect, it } from 'vitest';
import { numericMaxBytes, writeNumeric, writeNumericSafe } from '../../lib/format/arrow/pgtext.js';

/** numeric_send bytes of ±v × 10^-scale through the digit-string path. */
function viaString(neg: boolean, v: number, scale: number): Buffer {
  const b = Buffer.alloc(numericMaxBytes(40));
  return b.subarray(0, writeNumeric(b, 0, neg, String(v), scale));
}

function viaSafe(neg: boolean, v: number, scale: number): Buffer | undefined {
  const b = Buffer.alloc(numericMaxBytes(40));
  const n = writeNumericSafe(b, 0, neg, v, scale);
  return n < 0 ? undefined : b.subarray(0, n);
}

describe('writeNumericSafe (decimal → numeric_send without a digit string)', () => {
  it('writes the same bytes as writeNumeric for zero, trailing zero groups, every scale 0..15 and both signs', () => {
    const values = [0, 1, 9, 10, 99, 100, 9999, 10000, 10001, 12345678, 100000000, 123450000, 2 ** 31, 99999999999999, 1234567890123];
    let checked = 0;
    for (let scale = 0; scale <= 15; scale++) {
      for (const v of values) {
        for (const neg of [false, true]) {
          const safe = viaSafe(neg, v, scale);
          if (safe === undefined) continue; // v × 10^shift beyond 2^53: the caller takes the string path
          expect([v, scale, neg, safe.toString('hex')]).toEqual([v, scale, neg, viaString(neg, v, scale).toString('hex')]);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(400);
  });

  it('matches on pseudo-random values up to 2^53 - 1', () => {
    let x = 0x12345;
    for (let i = 0; i < 5000; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const v = Math.floor((x / 2 ** 31) * 2 ** (i % 53));
      const scale = i % 16;
      const safe = viaSafe(i % 3 === 0, v, scale);
      if (safe) expect(safe.equals(viaString(i % 3 === 0, v, scale))).toBe(true);
    }
  });

  it('declines what it cannot write exactly: scale outside 0..15, or v × 10^shift past 2^53', () => {
    expect(viaSafe(false, 5, 16)).toBeUndefined();
    expect(viaSafe(false, 5, -1)).toBeUndefined();
    // scale 1 shifts by 10^3 to reach a group boundary.
    expect(viaSafe(false, Number.MAX_SAFE_INTEGER, 1)).toBeUndefined();
    expect(viaSafe(false, Number.MAX_SAFE_INTEGER, 0)?.equals(viaString(false, Number.MAX_SAFE_INTEGER, 0))).toBe(true);
  });
});
