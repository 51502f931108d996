import { describe, expect, it } from 'vitest';
import { SESSION_SETTINGS, settingsSQL } from '../../lib/pg/conn.js';

// A stream's start is one query string (BEGIN; SET TRANSACTION SNAPSHOT; the settings): the
// settings are inlined only when no character of theirs can end or escape a literal.
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

  it('inlines nothing that could end or escape a literal: the caller binds those', () => {
    for (const bad of ["ISO'; DROP TABLE t; --", 'a\\', 'x\ny', 'caf\u00e9', '', 'a'.repeat(65)]) {
      expect(settingsSQL({ DateStyle: bad })).toBeUndefined();
      expect(settingsSQL({ [bad]: 'on' })).toBeUndefined();
    }
    expect(settingsSQL({})).toBeUndefined();
  });
});
