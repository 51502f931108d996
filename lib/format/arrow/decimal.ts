/*
 * numeric_send → Decimal128 without BigInt (lib/format/arrow/columns.ts calls this per value).
 *
 * numeric_send (src/backend/utils/adt/numeric.c): int16 ndigits, int16 weight, uint16 sign,
 * uint16 dscale, then ndigits base-10000 digits, the first worth 10000^weight. The value's
 * unscaled integer at scale s is digits × 10^(4·(weight − ndigits + 1) + s). Small values (up
 * to 12 decimal digits, the common case) are computed in one double; larger ones in five
 * 32-bit limbs held in doubles (a limb × 10000 + carry < 2^46 stays exact): the fifth holds
 * the digits below the scale (up to 10^-3) before they are divided off.
 */

const TWO32 = 4294967296;
const POW10 = [1, 10, 100, 1000, 10000];
const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
// Little-endian 32-bit limbs of the magnitude (scratch: one conversion at a time).
const L = new Float64Array(5);

/** L = L × m + a; false when the product needs more than 160 bits. */
function mulAdd(m: number, a: number): boolean {
  let carry = a;
  for (let i = 0; i < 5; i++) {
    const t = L[i]! * m + carry;
    const lo = t % TWO32;
    L[i] = lo;
    carry = (t - lo) / TWO32;
  }
  return carry === 0;
}

/** L = trunc(L / d), d ≤ 10000 (long division from the top limb; each step stays below 2^46). */
function divSmall(d: number): void {
  let r = 0;
  for (let i = 4; i >= 0; i--) {
    const t = r * TWO32 + L[i]!;
    r = t % d;
    L[i] = (t - r) / d;
  }
}

/**
 * Write the finite numeric_send value at `bv[off..]` as a 128-bit two's complement integer
 * scaled by 10^`scale` (truncated toward zero, as PostgreSQL has already rounded it to the
 * column's scale) at `dv[p..p+16)`, little-endian. Returns false, writing nothing, for NaN
 * and ±Infinity or a magnitude of 2^127 or more (Decimal128 holds neither).
 */
export function putDecimal128(bv: DataView, off: number, dv: DataView, p: number, scale: number): boolean {
  const ndigits = bv.getInt16(off);
  const sign = bv.getUint16(off + 4);
  if (sign !== NUMERIC_POS && sign !== NUMERIC_NEG) return false;
  let e = 4 * (bv.getInt16(off + 2) - ndigits + 1) + scale;
  if (ndigits <= 3 && e >= -4 && e <= 3) {
    // At most 12 digits times at most 10^3: below 2^53, exact in a double.
    let n = 0;
    for (let i = 0; i < ndigits; i++) n = n * 10000 + bv.getInt16(off + 8 + 2 * i);
    if (e >= 0) n *= POW10[e]!;
    else {
      const d = POW10[-e]!;
      n = (n - (n % d)) / d; // n − n mod d is a multiple of d: the quotient is exact
    }
    const lo = n % TWO32;
    let hi = (n - lo) / TWO32;
    if (sign === NUMERIC_NEG && n !== 0) {
      // Two's complement of a magnitude below 2^53: ~n + 1 over 64 bits, then all ones above.
      const nlo = (TWO32 - lo) % TWO32;
      hi = lo === 0 ? TWO32 - hi : TWO32 - 1 - hi;
      dv.setUint32(p, nlo, true);
      dv.setUint32(p + 4, hi % TWO32, true);
      dv.setInt32(p + 8, -1, true);
      dv.setInt32(p + 12, -1, true);
    } else {
      dv.setUint32(p, lo, true);
      dv.setUint32(p + 4, hi, true);
      dv.setUint32(p + 8, 0, true);
      dv.setUint32(p + 12, 0, true);
    }
    return true;
  }
  L.fill(0);
  for (let i = 0; i < ndigits; i++) if (!mulAdd(10000, bv.getInt16(off + 8 + 2 * i))) return false;
  for (let k = Math.min(e, 4); e > 0; e -= k, k = Math.min(e, 4)) if (!mulAdd(POW10[k]!, 0)) return false;
  for (let k = Math.min(-e, 4); e < 0; e += k, k = Math.min(-e, 4)) divSmall(POW10[k]!);
  // Decimal128 holds magnitudes below 2^127 (precision ≤ 38 stays far below).
  if (L[4] !== 0 || L[3]! >= 0x80000000) return false;
  let carry = 1;
  for (let i = 0; i < 4; i++) {
    let v = L[i]!;
    if (sign === NUMERIC_NEG) {
      // ~v + carry, limb by limb.
      v = TWO32 - 1 - v + carry;
      carry = v === TWO32 ? 1 : 0;
      if (carry) v = 0;
    }
    dv.setUint32(p + 4 * i, v, true);
  }
  return true;
}
