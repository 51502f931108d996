/**
 * The `copy-rowhash64` row checksum written again from its definition (lib/format/row-hash.ts
 * doc comment, docs/manifest.md), plainly and separately from the library's fast version, so
 * tests can compute expected figures independently.
 */

/** The row hash as the doc comment defines it, written plainly (unsigned arithmetic, BigInt result). */
export function refRowHash(x: Buffer): bigint {
  const P1 = 0x9e3779b1;
  const P2 = 0x85ebca77;
  const mul = (u: number, v: number) => Math.imul(u, v) >>> 0;
  const rotl = (v: number, r: number) => ((v << r) | (v >>> (32 - r))) >>> 0;
  const round = (acc: number, w: number) => mul(rotl((acc + mul(w, P2)) >>> 0, 13), P1);
  const n = x.length;
  let a = P1;
  let b = P2;
  let j = 0;
  while (j + 8 <= n) {
    a = round(a, x.readUInt32LE(j));
    b = round(b, x.readUInt32LE(j + 4));
    j += 8;
  }
  if (j + 4 <= n) {
    a = round(a, x.readUInt32LE(j));
    j += 4;
  }
  let t = 0;
  for (let k = 0; j + k < n; k++) t += x[j + k]! * 2 ** (8 * k);
  b = round(b, t);
  b = (b ^ n) >>> 0;
  a = (a + b) >>> 0;
  b = (b + a) >>> 0;
  const fmix = (h: number) => {
    h = (h ^ (h >>> 16)) >>> 0;
    h = mul(h, 0x85ebca6b);
    h = (h ^ (h >>> 13)) >>> 0;
    h = mul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  };
  return (BigInt(fmix(a)) << 32n) + BigInt(fmix(b));
}

export function refChecksum(rows: Buffer[]): { rows: number; sum: string } {
  let s = 0n;
  for (const r of rows) s = (s + refRowHash(r)) % (1n << 64n);
  return { rows: rows.length, sum: s.toString() };
}
