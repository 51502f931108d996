import { startFdwCluster } from '/work/wt/ddl/test/helpers/fixtures.js';
import { findPgDump, runPgDump } from '/work/wt/ddl/lib/ddl/pgdump.js';
import { parseConnection } from '/work/wt/ddl/lib/pg/conn.js';
const c = await startFdwCluster({ nodes: 2, rows: 100 } as any);
try {
  const url = c.coordinator.url();
  console.log(await c.coordinator.query(`SELECT c.relname, c.relkind, c.relispartition, pg_get_expr(c.relpartbound, c.oid) b FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace WHERE n.nspname='public'`));
  const out = await runPgDump(findPgDump(15), parseConnection(url), ['--schema-only', '--no-owner', '--no-privileges', '--schema=public', '--exclude-table=public.orders_p0', '--exclude-table=public.orders_p1', '--exclude-table=public.nation']);
  console.log(out);
} finally {
  await c.destroy();
}
