/**
 * The column types the Arrow tests cover (every type the Arrow format maps, plus inet), with
 * edge rows and a generated row set: shared by the Arrow tests and the COPY BINARY round trip.
 */

/** Every type the Arrow format maps, plus inet (a type without a mapping: text fallback). */
export const DDL = (name: string, withInet: boolean) => `CREATE TABLE ${name} (
  id int4 NOT NULL,
  i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
  n numeric, n12 numeric(12,2), n38 numeric(38,10), n40 numeric(40,5),
  b bool, t text, vc varchar(20), ch char(5), nm name, by bytea,
  d date, ts timestamp, tstz timestamptz, tm time, iv interval, u uuid, j json, jb jsonb,
  a_i4 int4[], a_t text[], a_n numeric(10,2)[], a_ts timestamptz[], a_f8 float8[], a_b bool[],
  a_u uuid[], a_by bytea[], a_jb jsonb[], a_d date[], a_iv interval[], a_i8 int8[]${withInet ? ',\n  inet_col inet' : ''}
)`;

/** Arrow type of each column when its values fit (apache-arrow's type names). */
export const EXPECTED: Record<string, string> = {
  id: 'Int32', i2: 'Int16', i4: 'Int32', i8: 'Int64', f4: 'Float32', f8: 'Float64',
  n: 'Utf8', n12: 'Decimal[12e+2]', n38: 'Decimal[38e+10]', n40: 'Utf8',
  b: 'Bool', t: 'Utf8', vc: 'Utf8', ch: 'Utf8', nm: 'Utf8', by: 'Binary',
  d: 'Date32<DAY>', ts: 'Timestamp<MICROSECOND>', tstz: 'Timestamp<MICROSECOND, UTC>', tm: 'Time64<MICROSECOND>',
  iv: 'Interval<MONTH_DAY_NANO>', u: 'FixedSizeBinary[16]', j: 'Utf8', jb: 'Utf8',
  a_i4: 'List<Int32>', a_t: 'List<Utf8>', a_n: 'List<Decimal[10e+2]>', a_ts: 'List<Timestamp<MICROSECOND, UTC>>',
  a_f8: 'List<Float64>', a_b: 'List<Bool>', a_u: 'List<FixedSizeBinary[16]>', a_by: 'List<Binary>',
  a_jb: 'List<Utf8>', a_d: 'List<Date32<DAY>>', a_iv: 'List<Interval<MONTH_DAY_NANO>>', a_i8: 'List<Int64>',
  inet_col: 'Utf8',
};

// Edge rows: NULLs everywhere, NaN, ±Infinity, -0, extreme numerics, epoch and range bounds,
// empty arrays and NULL elements.
export const EDGE_ROWS = [
  `(1, ${Array(35).fill('NULL').join(', ')})`,
  `(2, 32767, 2147483647, 9223372036854775807, 'NaN', 'NaN',
    'NaN', 9999999999.99, 9999999999999999999999999999.9999999999, 12345678901234567890123456789012345.12345,
    true, '', '', '', '', '\\x',
    'infinity', 'infinity', 'infinity', '00:00:00.5', '178000000 years', '00000000-0000-0000-0000-000000000000', '{}', '{}',
    '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')`,
  `(3, -32768, -2147483648, -9223372036854775808, 'Infinity', '-Infinity',
    'Infinity', -9999999999.99, -9999999999999999999999999999.9999999999, -0.00001,
    false, E'tab\\there\\nnew\\\\line "q" ''s'' ,{}', 'ünïcødé ☃', 'ab', 'nm', '\\x00ff10',
    '-infinity', '-infinity', '-infinity', '00:00:00', '-178000000 years -5 days -12:34:56.789', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '{"a": [1, 2.50, null]}', '{"b": {"c": "ü"}, "a": 1}',
    '{1,NULL,-3}', '{"a b",NULL,"","NULL","x\\"y","z\\\\w"}', '{1.50,NULL,-2.25}', '{"2000-01-01 00:00:00+00",NULL}', '{NaN,Infinity,-Infinity,-0,0,1e308,5e-324}', '{t,f,NULL}',
    '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}', '{"\\\\x00",NULL,"\\\\x"}', '{"{}","[1,2]",NULL}', '{2000-01-01,infinity,NULL,4713-01-01 BC}', '{"1 mon 2 days 00:00:00.000001",NULL}', '{9223372036854775807,-9223372036854775808}')`,
  `(4, 0, 0, 0, '-Infinity', 'Infinity',
    '-Infinity', 0, 0, 0,
    NULL, 'x', 'y', 'z', 'w', '\\xdeadbeef',
    '4713-01-01 BC', '4713-01-01 00:00:00 BC', '4713-01-01 00:00:00+00 BC', '23:59:59.999999', '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'null', 'null',
    '{0}', '{""}', '{0.00}', '{infinity,-infinity}', '{-0}', '{NULL}', '{}', '{}', '{null}', '{}', '{"-1 years +2 days -00:00:01"}', '{0}')`,
  `(5, 1, 1, 1, '-0', '-0',
    '-0.000000000000000000000000000000000000000000001', 0.01, 0.0000000001, 0.00001,
    true, repeat('x', 1000), 'short', 'a', repeat('n', 63), decode(repeat('ab', 500), 'hex'),
    '5874897-12-31', '294246-12-31 23:59:59.999999', '1970-01-01 00:00:00+00', '12:00:00', '-1 mon +1 day', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', '[1, "two", {"3": 4}]', '[1, "two", {"3": 4}]',
    '{1,2,3}', '{a}', '{1}', '{"1969-12-31 23:59:59.999999+00"}', '{3.141592653589793}', '{t}', '{}', '{"\\\\xff"}', '{"1"}', '{1970-01-01,1969-12-31,1999-12-31,2000-01-01}', '{"00:00:00"}', '{1}')`,
  `(6, 2, 2, 2, 1.5e-45, 5e-324,
    '123456789012345678901234567890123456789012345678901234567890.123456789012345678901234567890', 12.3, 1.1, 1.1,
    false, 'foo', 'bar', 'baz', 'qux', '\\x01',
    '1969-12-31', '1969-12-31 23:59:59.999999', '1999-12-31 23:59:59.999999+00', '00:00:00.000001', '2562047 hours 54.775807 seconds', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13', '{"k": "v"}', '{"k": "v"}',
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
  `(7, 3, 3, 3, 3.4028235e38, 1.7976931348623157e308,
    '1e-100', 0.5, -1e-10, 1e34,
    true, 'x', 'x', 'x', 'x', '\\x02',
    '2000-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00', '01:02:03', '-2562047 hours -54.775807 seconds', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a14', '"s"', '"s"',
    '{-2147483648,2147483647}', '{"{",  "}"}', '{-99999999.99}', '{"1677-09-21 00:12:43.145225+00"}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
];

// Values no Arrow type holds: the column falls back to its exact text form from that object on.
export const DEMOTING_ROWS = [
  // numeric NaN in a Decimal128 column; a timestamp past Arrow's int64 µs range.
  `(8, 1, 1, 1, 1, 1, 1, 'NaN', 1, 1, true, 'x', 'x', 'x', 'x', '\\x00',
    '2000-01-01', '294276-12-31 23:59:59.999999', '2000-01-01', '00:00', '1 day', NULL, NULL, NULL,
    '{{1,2},{3,4}}', '[0:1]={x,y}', NULL, '{"294276-12-31 23:59:59.999999+00"}', NULL, NULL, NULL, NULL, NULL, NULL,
    '{"2562047788 hours 54.775807 seconds"}', NULL)`,
  // an interval whose microseconds × 1000 overflow int64 nanoseconds; 24:00:00 (Time64 stops before).
  `(9, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, 'x', 'x', 'x', 'x', '\\x00',
    '2000-01-01', '2000-01-01', '2000-01-01', '24:00:00', '2562047788 hours 54.775807 seconds', NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
];

export const GEN_SELECT = `SELECT g, (g % 30000)::int2, g * 7, g::int8 * 1000003, g / 7.0, g / 3.0,
  (g * 1.000001)::numeric, (g / 100.0)::numeric(12,2), (g / 1000.0)::numeric(38,10), g::numeric(40,5),
  g % 2 = 0, 'row ' || g || repeat('z', g % 50), 'v' || g, 'c' || (g % 100), 'n' || g, decode(md5(g::text), 'hex'),
  date '2000-01-01' + (g % 20000 - 10000), timestamp '2000-01-01' + (g || ' seconds')::interval * 997,
  timestamptz '1970-01-01 UTC' - (g || ' minutes')::interval * 13, time '00:00' + (g || ' seconds')::interval,
  (g || ' days ' || g || ' seconds')::interval, md5(g::text)::uuid, json_build_object('g', g), jsonb_build_object('g', g, 's', 'x' || g),
  ARRAY[g, g + 1, NULL], ARRAY['a' || g, NULL], ARRAY[(g / 100.0)::numeric(10,2)], ARRAY[timestamptz '2020-01-01' + (g || ' hours')::interval],
  ARRAY[g / 3.0::float8], ARRAY[g % 3 = 0], ARRAY[md5(g::text)::uuid], ARRAY[decode(md5(g::text), 'hex')], ARRAY[jsonb_build_object('g', g)],
  ARRAY[date '2000-01-01' + g % 1000], ARRAY[(g || ' minutes')::interval], ARRAY[g::int8 << 20]`;
