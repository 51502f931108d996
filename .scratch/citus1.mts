import { startCitusCluster } from '/work/wt/ddl/test/helpers/citus.js';
import { findPgDump, runPgDump } from '/work/wt/ddl/lib/ddl/pgdump.js';
import { parseConnection } from '/work/wt/ddl/lib/pg/conn.js';
const c = await startCitusCluster({ name: 'scratch', workers: 2 });
try {
  await c.query(`CREATE TYPE st AS ENUM ('a','b'); CREATE TABLE events (id bigint PRIMARY KEY, tenant int, s st, note text); CREATE TABLE nation (n int PRIMARY KEY, name text); CREATE TABLE items (id bigint, tenant int, x text, PRIMARY KEY (tenant, id)); CREATE INDEX ON events (tenant)`);
  await c.query(`SET citus.shard_count = 6; SELECT create_distributed_table('events', 'id')`);
  await c.query(`SELECT create_reference_table('nation')`);
  await c.query(`SELECT create_distributed_table('items', 'tenant', colocate_with => 'none', shard_count => 4)`);
  await c.query(`CREATE TABLE local_t (a int); CREATE TABLE colo (id bigint, v text); SELECT create_distributed_table('colo', 'id', colocate_with => 'events')`);
  console.log(await c.query(`SELECT * FROM citus_tables`));
  console.log(await c.query(`SELECT logicalrelid::text, partmethod, colocationid, repmodel, pg_catalog.column_to_column_name(logicalrelid, partkey) AS col FROM pg_dist_partition`));
  const out = await runPgDump(findPgDump(15), parseConnection(c.coordinator.url()), ['--schema-only', '--no-owner', '--no-privileges', '--exclude-schema=segferry']);
  console.log(out);
  console.log(c.coordinator.url());
} finally {
  await c.destroy();
}
