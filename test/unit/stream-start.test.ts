import { describe, expect, it } from 'vitest';
import { SESSION_SETTINGS, settingsSQL } from '../../lib/pg/conn.js';

// A stream's start is one query string (BEGIN; SET TRANSACTION SNAPSHOT; the settings): names
// and values are quoted by quoteLiteral, except those whose reading depends on
// standard_conforming_strings (a backslash) or that no literal holds (NUL): the caller binds those.
describe('settingsSQL', () => {
  it('inlines the session settings segferry records, in order', () => {
    expect(settingsSQL(SESSION_SETTINGS)).toBe(
      "SELECT pg_catalog.set_config('DateStyle', 'ISO, MDY', false), pg_catalog.set_config('IntervalStyle', 'postgres', false), "
      + "pg_catalog.set_config('extra_float_digits', '3', false), pg_catalog.set_config('bytea_output', 'hex', false), "
      + "pg_catalog.set_config('TimeZone', 'UTC', false), pg_catalog.set_config('client_encoding', 'UTF8', false), "
      + "pg_catalog.set_config('standard_conforming_strings', 'on', false)",
    );
    expect(settingsSQL({ TimeZone: 'America/New_York', extra_float_digits: '-1' })).toBe(
      "SELECT pg_catalog.set_config('TimeZone', 'America/New_York', false), pg_catalog.set_config('extra_float_digits', '-1', false)",
    );
  });

  it('quotes what could end a literal, as quoteLiteral does', () => {
    expect(settingsSQL({ DateStyle: "ISO'; DROP TABLE t; --" })).toBe("SELECT pg_catalog.set_config('DateStyle', 'ISO''; DROP TABLE t; --', false)");
    expect(settingsSQL({ "it's": 'caf\u00e9\ny' })).toBe("SELECT pg_catalog.set_config('it''s', 'caf\u00e9\ny', false)");
    expect(settingsSQL({ application_name: '' })).toBe("SELECT pg_catalog.set_config('application_name', '', false)");
  });

  it('inlines nothing holding a backslash or a NUL: the caller binds those', () => {
    for (const bad of ['a\\', '\\047', 'x\u0000y']) {
      expect(settingsSQL({ DateStyle: bad })).toBeUndefined();
      expect(settingsSQL({ [bad]: 'on' })).toBeUndefined();
    }
    expect(settingsSQL({})).toBeUndefined();
  });
});
