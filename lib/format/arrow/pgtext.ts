import { OID } from './pgtypes.js';
import { ValueConversionError } from '../../errors.js';

/**
 * PostgreSQL BINARY COPY values to and from their text forms, for the few places the Arrow
 * path needs text: numeric without a declared precision (always text), values an Arrow type
 * cannot hold (a column falls back to text, see columns.ts), and import through COPY TEXT.
 * The forms are the ones PostgreSQL prints under segferry's session settings (DateStyle ISO,
 * IntervalStyle postgres, TimeZone UTC), so PostgreSQL reads them back to the same value.
 */

/** Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch). */
export const PG_EPOCH_US = 946_684_800_000_000n;
/** Days between 1970-01-01 and 2000-01-01. */
export const PG_EPOCH_DAYS = 10_957;

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;

/** numeric_send layout: int16 ndigits, int16 weight, uint16 sign, int16 dscale, base-10000 digits. */
export function numericToText(b: Buffer, off: number): string {
  const ndigits = b.readInt16BE(off);
  const weight = b.readInt16BE(off + 2);
  const sign = b.readUInt16BE(off + 4);
  const dscale = b.readInt16BE(off + 6);
  if (sign === NUMERIC_NAN) return 'NaN';
  if (sign === NUMERIC_PINF) return 'Infinity';
  if (sign === NUMERIC_NINF) return '-Infinity';
  let s = sign === NUMERIC_NEG ? '-' : '';
  if (weight < 0) {
    s += '0';
  } else {
    s += String(digitAt(b, off, ndigits, 0));
    for (let i = 1; i <= weight; i++) s += pad4(digitAt(b, off, ndigits, i));
  }
  if (dscale > 0) {
    let frac = '';
    for (let i = weight + 1; frac.length < dscale; i++) frac += pad4(digitAt(b, off, ndigits, i));
    s += '.' + frac.slice(0, dscale);
  }
  return s;
}

function digitAt(b: Buffer, off: number, ndigits: number, i: number): number {
  return i >= 0 && i < ndigits ? b.readInt16BE(off + 8 + 2 * i) : 0;
}

function pad4(n: number): string {
  return n >= 1000 ? String(n) : n >= 100 ? '0' + n : n >= 10 ? '00' + n : '000' + n;
}

const POW10 = [1, 10, 100, 1000];

/** Upper bound of the numeric_send size of a value with this many decimal digits. */
export function numericMaxBytes(digits: number): number {
  return 8 + 2 * (Math.ceil(digits / 4) + 2);
}

/**
 * Write numeric_send bytes of ±`digits` × 10^-`scale` (`digits`: decimal digits, no sign or
 * point) at `p`; returns the bytes written (at most {@link numericMaxBytes}). Digits are
 * grouped in base 10000 around the decimal point; leading and trailing zero groups dropped.
 */
export function writeNumeric(dst: Buffer, p: number, neg: boolean, digits: string, scale: number): number {
  let a = 0;
  while (a < digits.length - 1 && digits.charCodeAt(a) === 48) a++;
  const len = digits.length - a;
  const topExp = len - scale - 1; // power of ten of the first digit
  const weight = Math.floor(topExp / 4);
  const base = p + 8;
  let n = 0;
  let g = weight;
  let cur = 0;
  for (let k = 0; k < len; k++) {
    const e = topExp - k;
    const ge = Math.floor(e / 4);
    if (ge !== g) {
      dst.writeInt16BE(cur, base + 2 * n++);
      cur = 0;
      g = ge;
    }
    cur += (digits.charCodeAt(a + k) - 48) * POW10[e - ge * 4]!;
  }
  dst.writeInt16BE(cur, base + 2 * n++);
  while (n > 0 && dst.readInt16BE(base + 2 * (n - 1)) === 0) n--;
  dst.writeInt16BE(n, p);
  dst.writeInt16BE(n === 0 ? 0 : weight, p + 2);
  dst.writeUInt16BE(neg && n > 0 ? NUMERIC_NEG : NUMERIC_POS, p + 4);
  dst.writeInt16BE(Math.max(0, scale), p + 6);
  return 8 + 2 * n;
}

/** numeric text (as numeric_out prints it, or any plain decimal) → numeric_send bytes at `p`. */
export function writeNumericText(dst: Buffer, p: number, t: string): number {
  if (t === 'NaN' || t === 'Infinity' || t === '-Infinity') {
    dst.fill(0, p, p + 8);
    dst.writeUInt16BE(t === 'NaN' ? NUMERIC_NAN : t === 'Infinity' ? NUMERIC_PINF : NUMERIC_NINF, p + 4);
    return 8;
  }
  let s = t;
  let neg = false;
  if (s.charCodeAt(0) === 45 || s.charCodeAt(0) === 43) { neg = s.charCodeAt(0) === 45; s = s.slice(1); }
  const dot = s.indexOf('.');
  const ip = dot < 0 ? s : s.slice(0, dot);
  const fp = dot < 0 ? '' : s.slice(dot + 1);
  if (!/^\d*$/.test(ip) || !/^\d*$/.test(fp) || ip.length + fp.length === 0) {
    throw new ValueConversionError(`not a numeric text form: ${t.slice(0, 40)}`);
  }
  return writeNumeric(dst, p, neg, ip + fp, fp.length);
}

const two = (n: number) => (n < 10 ? '0' : '') + n;

/** Fractional seconds as PostgreSQL prints them: `.` and up to 6 digits, trailing zeros dropped. */
function fraction(us: number): string {
  if (us === 0) return '';
  return '.' + String(us).padStart(6, '0').replace(/0+$/, '');
}

/** Proleptic Gregorian date from days since 1970-01-01 (Howard Hinnant's civil_from_days). */
export function civilFromDays(z0: number): { y: number; m: number; d: number } {
  const z = z0 + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const y = yoe + era * 400;
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return { y: m <= 2 ? y + 1 : y, m, d };
}

/** `YYYY-MM-DD` (ISO), with ` BC` for years before 1 AD, as PostgreSQL prints dates. */
function dateText(days1970: number): { text: string; bc: boolean } {
  const { y, m, d } = civilFromDays(days1970);
  const bc = y <= 0;
  const year = bc ? 1 - y : y;
  return { text: `${String(year).padStart(4, '0')}-${two(m)}-${two(d)}`, bc };
}

/** date_send: int32 days since 2000-01-01; INT32_MIN/MAX are -infinity/infinity. */
export function dateToText(pgDays: number): string {
  if (pgDays === -0x80000000) return '-infinity';
  if (pgDays === 0x7fffffff) return 'infinity';
  const { text, bc } = dateText(pgDays + PG_EPOCH_DAYS);
  return bc ? text + ' BC' : text;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const US_PER_DAY = 86_400_000_000n;

/** timestamp[tz]_send: int64 µs since 2000-01-01 (UTC for timestamptz); INT64_MIN/MAX are ∓infinity. */
export function timestampToText(pgUs: bigint, tz: boolean): string {
  if (pgUs === INT64_MIN) return '-infinity';
  if (pgUs === INT64_MAX) return 'infinity';
  const us = pgUs + PG_EPOCH_US;
  let days = us / US_PER_DAY;
  let rem = us % US_PER_DAY;
  if (rem < 0n) { rem += US_PER_DAY; days -= 1n; }
  const { text, bc } = dateText(Number(days));
  return `${text} ${timeText(Number(rem))}${tz ? '+00' : ''}${bc ? ' BC' : ''}`;
}

/** time_send: int64 µs since midnight (24:00:00 allowed). */
export function timeText(us: number): string {
  const sec = Math.floor(us / 1e6);
  const f = us - sec * 1e6;
  const h = Math.floor(sec / 3600);
  const mi = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  return `${two(h)}:${two(mi)}:${two(s)}${fraction(f)}`;
}

/** interval_send: int64 µs, int32 days, int32 months → IntervalStyle `postgres` text. */
export function intervalToText(us: bigint, days: number, months: number): string {
  // Mirrors EncodeInterval (INTSTYLE_POSTGRES) in src/backend/utils/adt/datetime.c.
  const year = Math.trunc(months / 12);
  const mon = months % 12;
  let out = '';
  let isZero = true;
  let isBefore = false;
  const part = (v: number, unit: string) => {
    if (v === 0) return;
    out += `${isZero ? '' : ' '}${isBefore && v > 0 ? '+' : ''}${v} ${unit}${v !== 1 ? 's' : ''}`;
    isBefore = v < 0;
    isZero = false;
  };
  part(year, 'year');
  part(mon, 'mon');
  part(days, 'day');
  const hour = us / 3_600_000_000n;
  let r = us % 3_600_000_000n;
  const min = r / 60_000_000n;
  r %= 60_000_000n;
  const sec = r / 1_000_000n;
  const fsec = r % 1_000_000n;
  if (isZero || hour !== 0n || min !== 0n || sec !== 0n || fsec !== 0n) {
    const minus = hour < 0n || min < 0n || sec < 0n || fsec < 0n;
    const abs = (x: bigint) => (x < 0n ? -x : x);
    out += `${isZero ? '' : ' '}${minus ? '-' : isBefore ? '+' : ''}${abs(hour).toString().padStart(2, '0')}:${two(Number(abs(min)))}:`;
    out += two(Number(abs(sec))) + fraction(Number(abs(fsec)));
  }
  return out;
}

/** 8-4-4-4-12 hex. */
export function uuidText(b: Buffer, off: number): string {
  const h = b.toString('hex', off, off + 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Shortest text that reads back to the same float4. */
function float4Text(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  if (Object.is(v, -0)) return '-0';
  for (let p = 1; p <= 9; p++) {
    const s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) return String(Number(s));
  }
  return String(v);
}

function float8Text(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  if (Object.is(v, -0)) return '-0';
  return String(v); // shortest round-trip form; float8in reads it exactly
}

/** Does an array element need double quotes (array_out's rule)? */
function needsQuotes(s: string): boolean {
  if (s === '' || s.toUpperCase() === 'NULL') return true;
  return /[{}",\\ \t\n\r\v\f]/.test(s);
}

/** array_send → array text: `{a,"b c",NULL}`, nested braces, `[lb:ub]=` when a bound is not 1. */
function arrayToText(b: Buffer, off: number, elemOid: number): string {
  const ndim = b.readInt32BE(off);
  if (ndim === 0) return '{}';
  const dims: number[] = [];
  const lbs: number[] = [];
  let p = off + 12;
  for (let i = 0; i < ndim; i++) {
    dims.push(b.readInt32BE(p));
    lbs.push(b.readInt32BE(p + 4));
    p += 8;
  }
  let prefix = '';
  if (lbs.some((l) => l !== 1)) prefix = dims.map((d, i) => `[${lbs[i]}:${lbs[i]! + d - 1}]`).join('') + '=';
  const level = (dim: number): string => {
    const parts: string[] = [];
    for (let i = 0; i < dims[dim]!; i++) {
      if (dim < ndim - 1) { parts.push(level(dim + 1)); continue; }
      const len = b.readInt32BE(p);
      p += 4;
      if (len < 0) { parts.push('NULL'); continue; }
      const t = valueToText(elemOid, b, p, len);
      p += len;
      parts.push(needsQuotes(t) ? '"' + t.replace(/["\\]/g, '\\$&') + '"' : t);
    }
    return '{' + parts.join(',') + '}';
  };
  return prefix + level(0);
}

const ELEM_OF: Record<number, number> = {
  1000: OID.bool, 1001: OID.bytea, 1003: OID.name, 1016: OID.int8, 1005: OID.int2, 1007: OID.int4,
  1009: OID.text, 199: OID.json, 1021: OID.float4, 1022: OID.float8, 1014: OID.bpchar, 1015: OID.varchar,
  1182: OID.date, 1183: OID.time, 1115: OID.timestamp, 1185: OID.timestamptz, 1187: OID.interval,
  1231: OID.numeric, 2951: OID.uuid, 3807: OID.jsonb,
};

/**
 * Text form of one BINARY COPY value of a type segferry maps (see pgtypes.ts). Types read
 * through `::text` are already text (their oid is text's).
 */
export function valueToText(oid: number, b: Buffer, off: number, len: number): string {
  switch (oid) {
    case OID.bool: return b[off] ? 't' : 'f';
    case OID.int2: return String(b.readInt16BE(off));
    case OID.int4: return String(b.readInt32BE(off));
    case OID.int8: return b.readBigInt64BE(off).toString();
    case OID.float4: return float4Text(b.readFloatBE(off));
    case OID.float8: return float8Text(b.readDoubleBE(off));
    case OID.numeric: return numericToText(b, off);
    case OID.bytea: return '\\x' + b.toString('hex', off, off + len);
    case OID.jsonb: return b.toString('utf8', off + 1, off + len);
    case OID.date: return dateToText(b.readInt32BE(off));
    case OID.timestamp: return timestampToText(b.readBigInt64BE(off), false);
    case OID.timestamptz: return timestampToText(b.readBigInt64BE(off), true);
    case OID.time: return timeText(Number(b.readBigInt64BE(off)));
    case OID.interval: return intervalToText(b.readBigInt64BE(off), b.readInt32BE(off + 8), b.readInt32BE(off + 12));
    case OID.uuid: return uuidText(b, off);
    default: {
      const elem = ELEM_OF[oid];
      if (elem !== undefined) return arrayToText(b, off, elem);
      return b.toString('utf8', off, off + len);
    }
  }
}

/** Append a value to a COPY TEXT row: backslash, newline, carriage return and tab escaped. */
export function copyTextEscape(s: string): string {
  return /[\\\n\r\t]/.test(s) ? s.replace(/[\\\n\r\t]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t')) : s;
}

/**
 * {@link writeNumeric} of ±`v` × 10^-`scale` without going through a digit string, for the
 * common case of a safe integer `v` ≥ 0 and 0 ≤ `scale` ≤ 15; returns -1 (nothing written)
 * when the value is outside that case. Same bytes as `writeNumeric(dst, p, neg, String(v), scale)`.
 */
export function writeNumericSafe(dst: Buffer, p: number, neg: boolean, v: number, scale: number): number {
  if (scale < 0 || scale > 15) return -1;
  // Shift so the decimal point falls on a base-10000 group boundary.
  const m = (4 - (scale % 4)) % 4;
  let x = v * POW10[m]!;
  if (!(x <= Number.MAX_SAFE_INTEGER)) return -1;
  let low = -(scale + m) / 4; // base-10000 exponent of the lowest group
  // Trailing zero groups are dropped.
  while (x > 0 && x % 10000 === 0) {
    x /= 10000;
    low++;
  }
  let n = 0;
  for (let t = x; t > 0; t = Math.floor(t / 10000)) n++;
  const base = p + 8;
  for (let k = n - 1; k >= 0; k--) {
    const q = Math.floor(x / 10000);
    dst.writeInt16BE(x - q * 10000, base + 2 * k);
    x = q;
  }
  dst.writeInt16BE(n, p);
  dst.writeInt16BE(n === 0 ? 0 : low + n - 1, p + 2);
  dst.writeUInt16BE(neg && n > 0 ? NUMERIC_NEG : NUMERIC_POS, p + 4);
  dst.writeInt16BE(scale, p + 6);
  return 8 + 2 * n;
}
