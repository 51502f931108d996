import { describe, expect, it } from 'vitest';
import { checkDdlText, checkStatement, splitStatements, withoutTablespaces } from '../../lib/ddl/statements.js';

const refused = (sql: string) => {
  try {
    checkDdlText(sql);
  } catch (e) {
    return (e as { code?: string; message: string });
  }
  return undefined;
};

describe('splitStatements', () => {
  it('splits on ; outside strings, quoted identifiers, dollar quotes and comments', () => {
    const sql = `SET client_encoding = 'UTF8';
-- a comment; with a semicolon
CREATE TABLE "a;b" (x text DEFAULT 'it''s; fine', y text DEFAULT E'back\\\\slash\\'; too');
/* block /* nested; */ still; */ CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;
COMMENT ON TABLE "a;b" IS $$x;y$$`;
    const st = splitStatements(sql);
    expect(st.map((s) => s.tokens[0]!.text)).toEqual(['set', 'create', 'create', 'comment']);
    expect(st[1]!.tokens[2]).toEqual({ kind: 'ident', text: 'a;b' });
    expect(st[2]!.line).toBe(4);
    expect(st[3]!.text).toBe('COMMENT ON TABLE "a;b" IS $$x;y$$');
  });
  it('refuses unterminated quotes and psql meta-commands', () => {
    for (const bad of ["SELECT 'x", 'CREATE TABLE "x (a int)', 'CREATE FUNCTION f() AS $a$ x', '/* open', "\\! rm -rf /\n", "SET a = 1;\n\\copy t from program 'x'"]) {
      expect(refused(bad)?.code, bad).toBe('ERR_DDL_REFUSED');
    }
  });
});

describe('checkStatement', () => {
  const ok = [
    "SET statement_timeout = 0",
    "SET default_tablespace = ''",
    "SELECT pg_catalog.set_config('search_path', '', false)",
    "SELECT pg_catalog.setval('sales.orders_id_seq', 5000, true)",
    'CREATE SCHEMA "Odd Schema ü"',
    "CREATE TYPE sales.status AS ENUM ('new', 'paid')",
    'CREATE DOMAIN sales.m AS numeric(12,2) CONSTRAINT positive CHECK ((VALUE > (0)::numeric))',
    'CREATE TABLE sales.t (id integer NOT NULL, total numeric GENERATED ALWAYS AS ((amount * qty)) STORED) PARTITION BY RANGE (ts)',
    'CREATE UNIQUE INDEX k ON sales.c USING btree (lower(email))',
    'CREATE FUNCTION sales.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$',
    'CREATE FUNCTION f(language text) RETURNS text LANGUAGE sql AS $$ SELECT language $$',
    'CREATE MATERIALIZED VIEW sales.v AS SELECT 1 AS x WITH NO DATA',
    'CREATE TRIGGER t BEFORE UPDATE ON sales.c FOR EACH ROW EXECUTE FUNCTION sales.touch()',
    'CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public',
    'ALTER TABLE ONLY sales.m ATTACH PARTITION sales.m_01 FOR VALUES FROM (\'2025-01-01\') TO (\'2025-02-01\')',
    'ALTER SEQUENCE sales.s OWNED BY sales.t.no',
    "COMMENT ON COLUMN sales.c.email IS 'unique'",
    'REFRESH MATERIALIZED VIEW sales.v',
  ];
  it.each(ok)('runs %s', (sql) => {
    expect(() => checkStatement(splitStatements(sql)[0]!)).not.toThrow();
  });
  const bad: [string, RegExp][] = [
    ["COPY t FROM PROGRAM 'curl evil'", /COPY/],
    ['CREATE ROLE admin SUPERUSER', /CREATE ROLE is not run/],
    ["ALTER SYSTEM SET archive_command = 'x'", /ALTER SYSTEM is not run/],
    ["DO $$ BEGIN PERFORM 1; END $$", /DO/],
    ["CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'libevil', 'f'", /only in sql or plpgsql \(this one: c\)/],
    ["CREATE FUNCTION f() RETURNS int AS $$ x $$ LANGUAGE plperlu", /plperlu/],
    ['CREATE TABLE t AS SELECT pg_read_file(\'/etc/passwd\')', /runs a query/],
    ['CREATE MATERIALIZED VIEW v AS SELECT 1', /WITH NO DATA/],
    ['ALTER TABLE t OWNER TO postgres', /ownership/],
    ['GRANT ALL ON t TO PUBLIC', /GRANT/],
    ["SET session_replication_role = replica", /not one of pg_dump's settings/],
    ["SELECT pg_catalog.set_config('session_replication_role', 'replica', false)", /search_path/],
    ["SELECT pg_catalog.setval('s', (SELECT 1), true)", /constants/],
    ["SELECT pg_terminate_backend(1)", /only SELECT/],
    ["CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw", /CREATE SERVER/],
    ["CREATE LANGUAGE plperlu", /CREATE LANGUAGE/],
  ];
  it.each(bad)('refuses %s', (sql, re) => {
    const e = refused(sql);
    expect(e?.code).toBe('ERR_DDL_REFUSED');
    expect(e?.message).toMatch(re);
  });
  it('one bad statement among good ones refuses the whole text', () => {
    expect(refused("SET lock_timeout = 0;\nCREATE SCHEMA a;\nCOPY a.t TO PROGRAM 'x';")?.message).toMatch(/line 3/);
  });
});

describe('withoutTablespaces', () => {
  it('leaves out SET default_tablespace naming a tablespace (bare or quoted), keeps the empty one and everything else', () => {
    const st = checkDdlText(`SET default_tablespace = '';\nCREATE TABLE a (x int);\nSET default_tablespace = sf_ts;\nCREATE TABLE b (x int);\nSET default_tablespace = "Fast Disk";\nCREATE INDEX i ON b (x);\nSET default_table_access_method = heap`);
    expect(withoutTablespaces(st).map((s) => s.text)).toEqual([
      "SET default_tablespace = ''", 'CREATE TABLE a (x int)', 'CREATE TABLE b (x int)', 'CREATE INDEX i ON b (x)', 'SET default_table_access_method = heap',
    ]);
  });
});
