import { randomUUID } from 'node:crypto';
import { ROW_HASH_ALGORITHM } from '../format/row-hash.js';
import { MANIFEST_VERSION, type Manifest, type ManifestTable, type RowChecksum } from '../manifest/types.js';
import { displayName } from '../pg/sql.js';
import type { S3Options } from '../store/s3.js';
import { VERSION } from '../version.js';
import { addChecksums } from './exporter.js';
import type { ExportPlan } from './plan.js';
import type { UnitResult } from './units.js';

/**
 * The manifest of a finished export: every table of the plan with its per-node figures (from
 * the units' results), every object sorted by (table, node, segment), and no credentials.
 */
export function buildManifest(plan: ExportPlan, results: readonly UnitResult[], createdAt: string, s3?: S3Options, id: string = randomUUID()): Manifest {
  const tables: ManifestTable[] = plan.tables.map((t) => {
    const rs = results.filter((r) => r.unit.table === t).sort((a, b) => (a.node < b.node ? -1 : 1));
    const mt: ManifestTable = {
      schema: t.table.schema,
      name: t.table.name,
      objectName: t.objectName,
      columns: t.columns,
      ...(t.generated && t.generated.length > 0 ? { generated: t.generated } : {}),
      distribution: t.distribution,
      filter: plan.filter,
      rows: rs.reduce((a, r) => a + r.rows, 0),
      bytes: rs.reduce((a, r) => a + r.bytes, 0),
      // One entry per node: the streams of a node (range units) add up.
      nodes: [...new Set(rs.map((r) => r.node))].map((node) => {
        const mine = rs.filter((r) => r.node === node);
        const n: ManifestTable['nodes'][number] = {
          node,
          // A replicated table read from a fallback replica names the planned relations.
          relations: (t.reads.some((x) => x.node === node) ? t.reads.filter((x) => x.node === node) : t.reads).map((x) => displayName(x.relation)),
          rows: mine.reduce((a, r) => a + r.rows, 0),
          bytes: mine.reduce((a, r) => a + r.bytes, 0),
          objects: mine.reduce((a, r) => a + r.objects.length, 0),
        };
        if (mine.every((r) => r.checksum)) n.checksum = mine.slice(1).reduce((a, r) => addChecksums(a, r.checksum!), mine[0]!.checksum!);
        return n;
      }),
    };
    if (plan.checksums && rs.every((r) => r.checksum)) {
      mt.checksum = rs.reduce<RowChecksum>((a, r) => addChecksums(a, r.checksum!), { rows: 0, sum: '0', algorithm: ROW_HASH_ALGORITHM });
    }
    const arrow = rs.find((r) => r.arrow)?.arrow;
    if (arrow) {
      // The first node's types; a column is flagged demoted when any node's objects hold it as text.
      mt.arrow = { schema: arrow.map((c, i) => (rs.some((r) => r.arrow?.[i]?.demoted) ? { ...c, demoted: true } : c)) };
    }
    const parquet = rs.find((r) => r.parquet)?.parquet;
    if (parquet) mt.parquet = { schema: parquet.map((c, i) => (rs.some((r) => r.parquet?.[i]?.demoted) ? { ...c, demoted: true } : c)) };
    return mt;
  });
  const objects = results.flatMap((r) => r.objects).sort((a, b) => (a.table === b.table ? (a.node === b.node ? a.segment - b.segment : a.node < b.node ? -1 : 1) : a.table < b.table ? -1 : 1));
  const m: Manifest = {
    kind: 'segferry-manifest',
    version: MANIFEST_VERSION,
    id,
    createdAt,
    completedAt: new Date().toISOString(),
    writer: `segferry ${VERSION}`,
    source: {
      topology: plan.topology,
      nodes: plan.nodes.map((n) => ({ name: n.name, host: n.endpoint.host, port: n.endpoint.port, database: n.endpoint.database })),
    },
    format: plan.format,
    ...(plan.compression ? { compression: plan.compression } : {}),
    ...(plan.arrowCompression ? { arrowCompression: plan.arrowCompression } : {}),
    sessionSettings: plan.sessionSettings,
    segmentSize: plan.segmentSize,
    tables,
    objects,
  };
  if (plan.coordinator) m.source.coordinator = { host: plan.coordinator.host, port: plan.coordinator.port, database: plan.coordinator.database };
  if (s3?.serverSideEncryption) {
    m.encryption = { algorithm: s3.serverSideEncryption };
    if (s3.kmsKeyId) m.encryption.kmsKeyId = s3.kmsKeyId;
  }
  return m;
}
