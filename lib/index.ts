/**
 * segferry: parallel export and import of tables between distributed PostgreSQL-family
 * clusters and S3-compatible object storage. This module is the whole public API: each name is
 * listed explicitly (test/unit/api-surface.test.ts checks the list), and its types name no
 * `pg` or AWS SDK type, so a user's types never depend on those packages' versions.
 */
export { planExport, DEFAULT_SEGMENT_SIZE } from './export/plan.js';
export { segmentKey } from './manifest/keys.js';
export type { ExportPlan, PlanOptions } from './export/plan.js';
export { exportTables } from './export/export.js';
export { encryptPlan, finishPlan, parsePlanFile, planFile, planParts, runPlanPart } from './export/parts.js';
export { holdSnapshots, holdUntilFinished } from './export/hold.js';
export type { HeldSnapshots, HoldOptions } from './export/hold.js';
export type { FinishPlanOptions, PartResult, PlanFile, RunPartOptions } from './export/parts.js';
export type { ExportOptions, ExportResult, NodeSummary } from './export/export.js';
export type { StaticTopology } from './topology/discover.js';
export type { ColumnInfo, Distribution, PlanNode, RelationRead, TablePlan, TopologyKind } from './topology/types.js';
export type { NodeEndpoint } from './pg/conn.js';
export type { QualifiedName } from './pg/sql.js';
export type { FormatKind, FormatOptions, ParquetCompressionName } from './format/options.js';
export { openStore } from './store/open.js';
export { S3Store } from './store/s3.js';
export type { S3Options, S3RetryInfo, S3ClientLike } from './store/s3.js';
export { DirectoryStore } from './store/dir.js';
export type { ObjectStore, ObjectWriter, ObjectInfo } from './store/types.js';
export { importTables } from './import/import.js';
export type { ImportOptions, ImportResult, ImportTableResult, ImportNodeSummary } from './import/import.js';
export { planImport } from './import/plan.js';
export type { ImportPlan, ImportPlanOptions, ImportRoute, ImportTablePlan, ImportTarget, PlannedObject, BareSource, TableSelection } from './import/plan.js';
export { verifyImport } from './import/verify.js';
export { copyTables, planCopy } from './copy/copy.js';
export type { CopyOptions, CopyResult, CopyVerifyTable, CopyPlan, CopyPlanOptions, CopyUnitPlan, CopyFormatKind } from './copy/copy.js';
export type { VerifyOptions, VerifyResult, VerifyTable, VerifyNode } from './import/verify.js';
export { readManifest } from './manifest/io.js';
// Client-side encryption (issue 18): the reading side for callers that read objects themselves.
export { parseEncryptOption } from './crypto/keys.js';
export type { EncryptOption } from './crypto/keys.js';
export { readExportKey } from './import/encryption.js';
export { decryptObject } from './crypto/objects.js';
export type { ObjectCipher } from './crypto/objects.js';
export { cleanup } from './maintenance/cleanup.js';
export type { CleanupOptions, CleanupResult } from './maintenance/cleanup.js';
export { checkExport } from './maintenance/check.js';
export type { CheckOptions, CheckResult, ChangedObject, MaintenanceEvent } from './maintenance/check.js';
export { replicateExport } from './maintenance/replicate.js';
export type { ReplicateOptions, ReplicateResult } from './maintenance/replicate.js';
export { MANIFEST_KEY, MANIFEST_VERSION } from './manifest/types.js';
export type { Manifest, ManifestObject, ManifestTable, ManifestTableNode, RowChecksum, ManifestDdl, ManifestDdlObject, ManifestSequence, ClientEncryption, ManifestDistribution } from './manifest/types.js';
export type { ObjectChecksum, ObjectDigest } from './manifest/digest.js';
export type {
  SegferryEvent, EventListener, StartEvent, ProgressEvent, SegmentEvent, NodeDoneEvent, TableDoneEvent, RetryEvent, DoneEvent, WarningEvent,
} from './events.js';
// Every error class (users match on `instanceof` or `code`), none of the helpers.
export {
  SegferryError, InvalidOptionError, ConnectError, AuthError, TableNotFoundError, ColumnNotFoundError, TopologyError,
  DatabaseError, RowTooLargeError, BucketNotFoundError, StorageError, PrefixNotEmptyError, PrefixClaimedError, UnfinishedExportError,
  ManifestMissingError, ManifestInvalidError, ObjectMissingError, ChecksumMismatchError, RowCountMismatchError,
  SchemaMismatchError, VerifyMismatchError, KeyEscapesRootError, AbortedError, PrerequisiteError, WorkerError,
  CopyProtocolError, ValueConversionError, FormatError, InternalError, UntrustedInputError, DestinationNotEmptyError,
  EncryptionKeyError, DecryptionError,
  BinaryTypeMismatchError,
  PgDumpError, DdlUnsupportedError, DdlRefusedError, DdlConflictError,
  PlanIncompleteError,
  RejectLimitError,
  SnapshotGoneError,
  DecompressError,
} from './errors.js';
export type { ErrorCode, ErrorContext } from './errors.js';
export { VERSION } from './version.js';
export { openArrowObject, arrowCopyFromSQL } from './format/arrow/api.js';
export { decompressChunks } from './format/compress.js';
export type { Compression, CompressionOption, DecompressOptions } from './format/compress.js';
export type { ArrowCopySource, ArrowCopyFormat, ArrowDecodeOptions } from './format/arrow/decoder.js';
export type { ArrowColumnSummary, ArrowCompression } from './format/arrow/segment-writer.js';
export type { ParquetColumnSummary } from './manifest/types.js';
