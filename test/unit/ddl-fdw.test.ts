import { describe, expect, it } from 'vitest';
import { localPartitionsSQL, publicSchemaIfNotExists } from '../../lib/ddl/fdw.js';
import { checkDdlText } from '../../lib/ddl/statements.js';
import { DdlRefusedError } from '../../lib/errors.js';

describe('postgres_fdw coordinators: local partitions instead of foreign ones (lib/ddl/fdw.ts)', () => {
  it('writes each foreign partition as a local partition of its parent with the same bound, quoted, and the allowlist runs it', () => {
    const sql = localPartitionsSQL([
      { table: { schema: 'public', name: 'orders_p0' }, parent: { schema: 'public', name: 'orders' }, bound: 'FOR VALUES WITH (modulus 2, remainder 0)', level: 1 },
      { table: { schema: 'Odd "S"', name: 'm_other' }, parent: { schema: 'Odd "S"', name: 'm' }, bound: 'DEFAULT', level: 1 },
    ]);
    const st = checkDdlText(sql);
    expect(st.map((s) => s.text)).toEqual([
      'CREATE TABLE "public"."orders_p0" PARTITION OF "public"."orders" FOR VALUES WITH (modulus 2, remainder 0)',
      'CREATE TABLE "Odd ""S"""."m_other" PARTITION OF "Odd ""S"""."m" DEFAULT',
    ]);
    expect(localPartitionsSQL([])).toBe('');
  });

  it('the allowlist still refuses foreign servers, user mappings and foreign tables from storage', () => {
    for (const bad of [
      "CREATE SERVER dn1 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '10.0.0.1')",
      "CREATE USER MAPPING FOR CURRENT_USER SERVER dn1 OPTIONS (user 'u', password 'p')",
      "CREATE FOREIGN TABLE public.orders_p0 PARTITION OF public.orders FOR VALUES WITH (modulus 2, remainder 0) SERVER dn1",
      "ALTER FOREIGN TABLE public.x OPTIONS (SET table_name 'y')",
      "ALTER SERVER dn1 OPTIONS (SET host 'evil')",
      'CREATE FOREIGN DATA WRAPPER w',
    ]) {
      expect(() => checkDdlText(bad + ';'), bad).toThrow(DdlRefusedError);
    }
  });

  it('CREATE SCHEMA public (pg_dump --schema=public) becomes IF NOT EXISTS; other schemas unchanged', () => {
    expect(publicSchemaIfNotExists('CREATE SCHEMA public;\nCREATE SCHEMA publicity;\n')).toBe('CREATE SCHEMA IF NOT EXISTS "public";\nCREATE SCHEMA publicity;\n');
  });
});
