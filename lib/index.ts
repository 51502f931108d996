/**
 * segferry: parallel export and import of tables between distributed PostgreSQL-family
 * clusters and S3-compatible object storage. This module is the whole public API.
 */
export { planExport, DEFAULT_SEGMENT_SIZE, segmentKey } from './export/plan.js';
export type { ExportPlan, PlanOptions } from './export/plan.js';
export { exportTables } from './export/export.js';
export type { ExportOptions, ExportResult, NodeSummary } from './export/export.js';
export type { StaticTopology } from './topology/discover.js';
export type { ColumnInfo, Distribution, PlanNode, RelationRead, TablePlan, TopologyKind } from './topology/types.js';
export type { NodeEndpoint } from './pg/conn.js';
export type { QualifiedName } from './pg/sql.js';
export type { FormatKind, FormatOptions } from './format/options.js';
export { openStore } from './store/open.js';
export { S3Store, DEFAULT_PART_SIZE, DEFAULT_QUEUE_SIZE } from './store/s3.js';
export type { S3Options, S3RetryInfo } from './store/s3.js';
export { DirectoryStore } from './store/dir.js';
export type { ObjectStore, ObjectWriter, ObjectInfo } from './store/types.js';
export { importTables } from './import/import.js';
export type { ImportOptions, ImportResult, ImportTableResult, ImportNodeSummary } from './import/import.js';
export { planImport } from './import/plan.js';
export type { ImportPlan, ImportPlanOptions, ImportRoute, ImportTablePlan, ImportTarget, PlannedObject, BareSource } from './import/plan.js';
export { verifyImport } from './import/verify.js';
export type { VerifyOptions, VerifyResult, VerifyTable, VerifyNode } from './import/verify.js';
export { LEDGER_TABLE } from './import/ledger.js';
export { readManifest } from './manifest/io.js';
export { cleanup } from './maintenance/cleanup.js';
export type { CleanupOptions, CleanupResult } from './maintenance/cleanup.js';
export { MANIFEST_KEY, MANIFEST_VERSION } from './manifest/types.js';
export type { Manifest, ManifestObject, ManifestTable, ManifestTableNode, RowChecksum } from './manifest/types.js';
export type {
  SegferryEvent, EventListener, StartEvent, ProgressEvent, SegmentEvent, NodeDoneEvent, TableDoneEvent, RetryEvent, DoneEvent, WarningEvent,
} from './events.js';
export * from './errors.js';
export { VERSION } from './version.js';
export { openArrowObject, arrowCopyFromSQL } from './format/arrow/api.js';
export type { ArrowCopySource, ArrowCopyFormat, ArrowDecodeOptions } from './format/arrow/decoder.js';
export type { ArrowColumnSummary, ArrowCompression } from './format/arrow/segment-writer.js';
