import { randomBytes } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';
import type { QualifiedName } from '../pg/sql.js';

// Every key segferry writes under a prefix is named here, and nowhere else (docs/naming.md).

/** Key of the manifest under an export's prefix. Its presence marks the export complete. */
export const MANIFEST_KEY = 'manifest.json';

/** Key of the progress checkpoint of an export under way (removed once the manifest exists). */
export const CHECKPOINT_KEY = 'segferry-checkpoint.json';

/** Key of the claim a run holds on a prefix while it writes there (lib/store/claim.ts). */
export const CLAIM_KEY = 'segferry-claim.json';

/**
 * Keys of an export's schema (issue 14): pg_dump's pre-data and post-data sections. A segment
 * key always contains `_segment.` followed by digits at its end, so these never collide.
 */
export const DDL_PRE_KEY = 'segferry-ddl-pre-data.sql';
export const DDL_POST_KEY = 'segferry-ddl-post-data.sql';

/**
 * Key of the record of part K of N of a plan run on many hosts (`segferry run --part K/N`):
 * `segferry-part-<K>-of-<N>.json`. Like a checkpoint: the units the part stored, with their objects.
 */
export function partKey(k: number, n: number): string {
  if (!Number.isSafeInteger(k) || !Number.isSafeInteger(n) || k < 1 || k > n) throw new InvalidOptionError(`part ${k}/${n} is out of range (K from 1 to N)`);
  return `segferry-part-${k}-of-${n}.json`;
}

/** Part records' keys (see {@link partKey}). */
export const PART_KEY = /^segferry-part-[1-9]\d*-of-[1-9]\d*\.json$/;

/** Suffix of a directory store's temporary file, before its random hex tag. */
export const PARTIAL_SUFFIX = '.segferry-partial-';

/**
 * File-name extensions an object key may end with (`--extension`): the format's, then the
 * codec's. Only these: a key with any other tail is not a segment.
 */
export const FORMAT_EXTENSIONS: Readonly<Record<string, string>> = Object.freeze({ text: '.txt', csv: '.csv', binary: '.bin', arrow: '.arrow', parquet: '.parquet' });
export const CODEC_EXTENSIONS: Readonly<Record<string, string>> = Object.freeze({ gzip: '.gz', zstd: '.zst' });

/** The optional extension after a segment number, as a regular expression source. */
const EXT = '(?:\\.(?:txt|csv|bin|arrow|parquet))?(?:\\.(?:gz|zst))?';

/** Trailing `<n>[<ext>]` or `<n>[<ext>].segferry-partial-<hex>` after a unit's segment stem. */
const SEGMENT_TAIL = new RegExp(`^\\d+${EXT}(\\.segferry-partial-[0-9a-f]+)?$`);
const EXT_ONLY = new RegExp(`^${EXT}$`);
const SEGMENT_END = new RegExp(`_segment\\.\\d+${EXT}$`);
const STEM_OF = new RegExp(`^(.*_segment\\.)\\d+${EXT}$`);
/** A segment key or its partial upload, judged by its end. */
const SEGMENT_KEY = new RegExp(`_segment\\.\\d+${EXT}(\\.segferry-partial-[0-9a-f]+)?$`);

/**
 * The extension `--extension` appends for a format and codec: `.txt`, `.csv`, `.bin`, `.arrow`,
 * `.parquet`, then `.gz` or `.zst` (e.g. `.csv.gz`).
 * @throws InvalidOptionError for a format or codec without one.
 */
export function segmentExtension(format: string, compression?: string): string {
  const f = Object.hasOwn(FORMAT_EXTENSIONS, format) ? FORMAT_EXTENSIONS[format] : undefined;
  const c = compression === undefined ? '' : Object.hasOwn(CODEC_EXTENSIONS, compression) ? CODEC_EXTENSIONS[compression] : undefined;
  if (f === undefined || c === undefined) throw new InvalidOptionError(`no file-name extension for format ${format}${compression ? ` with ${compression}` : ''}`);
  return f + c;
}

/**
 * The key of segment n of a table on a node: `<objectName>_<node>_segment.<n>`, followed by
 * `ext` (a {@link segmentExtension} result; default none).
 */
export function segmentKey(objectName: string, node: string, n: number, ext = ''): string {
  if (ext !== '' && !EXT_ONLY.test(ext)) throw new InvalidOptionError(`${JSON.stringify(ext)} is not a segment extension`);
  return `${segmentStem(objectName, node)}${n}${ext}`;
}

/** The codec a segment key's extension names (`.gz`, `.zst`), if any. */
export function compressionOfKey(key: string): 'gzip' | 'zstd' | undefined {
  if (!SEGMENT_END.test(key)) return undefined;
  return key.endsWith('.gz') ? 'gzip' : key.endsWith('.zst') ? 'zstd' : undefined;
}

/** What every segment key of a (table, node) unit starts with: `<objectName>_<node>_segment.`. */
export function segmentStem(objectName: string, node: string): string {
  return `${objectName}_${node}_segment.`;
}

/**
 * The temporary name an upload of `key` is written under before it is renamed into place:
 * `<key>.segferry-partial-<12 hex digits>` (random, so two writers never share one).
 */
export function partialKey(key: string): string {
  return key + PARTIAL_SUFFIX + randomBytes(6).toString('hex');
}

/** What every rejects object's key starts with (see {@link rejectsKey}). */
export const REJECTS_PREFIX = 'segferry-rejects.';

/**
 * Key of the rejects object of one source object loaded into one destination node (issue 18):
 * `segferry-rejects.<node>.<object key>.jsonl`, the node name percent-encoded like object names
 * and its dots too, so the first dot after the prefix ends it and no two (node, object) pairs
 * share a key. It never collides with a segment (those end in `_segment.<n>`), the manifest,
 * checkpoint, claim, DDL or part keys (fixed names without this prefix).
 */
export function rejectsKey(node: string, objectKey: string): string {
  const n = node.replace(/[%/\\.\x00-\x1f\x7f]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
  return `${REJECTS_PREFIX}${n}.${objectKey}.jsonl`;
}

const REJECTS = /^segferry-rejects\.[^./]+\.([^/]+)\.jsonl$/;
const REJECTS_PARTIAL = /^segferry-rejects\.[^./]+\.([^/]+)\.jsonl\.segferry-partial-[0-9a-f]+$/;

/** The source object a rejects object (or its directory-store temporary) is about, or undefined for other keys. */
export function rejectsObjectOf(key: string): string | undefined {
  return (REJECTS.exec(key) ?? REJECTS_PARTIAL.exec(key))?.[1];
}

/** True for a rejects object's key ({@link rejectsKey}) directly under the prefix. */
export function isRejectsKey(key: string): boolean {
  return REJECTS.test(key);
}

/** True for a directory store's temporary of a rejects object (an interrupted write). */
export function isRejectsPartialKey(key: string): boolean {
  return REJECTS_PARTIAL.test(key);
}

/** segferry's fixed keys and their directory-store temporaries. */
const CONTROL = new RegExp(`^(${[MANIFEST_KEY, CHECKPOINT_KEY, CLAIM_KEY, DDL_PRE_KEY, DDL_POST_KEY].map((k) => k.replace(/\./g, '\\.')).join('|')}|segferry-part-[1-9]\\d*-of-[1-9]\\d*\\.json)(\\.segferry-partial-[0-9a-f]+)?$`);

/** True for the manifest, checkpoint, claim, DDL and part-record keys (and their directory-store temporaries). */
export function isControlKey(key: string): boolean {
  return CONTROL.test(key);
}

/**
 * Keys shaped like segferry's (the manifest, checkpoint, claim, segments and their partial
 * uploads), judged by the last path segment so a nested export's keys count too. Not proof of
 * ownership: deletions go by lib/export/ownership.ts.
 */
export function isSegferryKey(key: string): boolean {
  const base = key.slice(key.lastIndexOf('/') + 1);
  return CONTROL.test(base) || SEGMENT_KEY.test(base);
}

/** Stem of a segment key (`t_dn1_segment.12` or `t_dn1_segment.12.csv.gz` → `t_dn1_segment.`), or undefined. */
export function segmentStemOf(key: string): string | undefined {
  const m = STEM_OF.exec(key);
  return m ? m[1] : undefined;
}

/** True when `key` is `<stem><n>[<ext>]` or `<stem><n>[<ext>].segferry-partial-<hex>`. */
export function isSegmentOf(key: string, stem: string): boolean {
  return key.startsWith(stem) && SEGMENT_TAIL.test(key.slice(stem.length));
}

/**
 * A matcher of the objects (and partial uploads) of the given (table, node) units: every key
 * `<stem><n>[<ext>]` or `<stem><n>[<ext>].segferry-partial-<hex>` of one of their segment stems.
 */
export function unitObjectMatcher(units: { objectName: string; node: string }[]): (key: string) => boolean {
  const stems = units.map((u) => segmentStem(u.objectName, u.node));
  return (key) => stems.some((p) => isSegmentOf(key, p));
}

/**
 * Build the `<table>` part of object keys. It is the table's name; when two exported tables
 * share a name in different schemas, both use `schema.name`. `/`, `%`, `\` and control
 * characters are percent-encoded so a key is always one path segment.
 * Throws InvalidOptionError when two tables would still share a name.
 */
export function objectNames(tables: QualifiedName[]): string[] {
  const count = new Map<string, number>();
  for (const t of tables) count.set(t.name, (count.get(t.name) ?? 0) + 1);
  const enc = (s: string) => s.replace(/[%/\\\x00-\x1f\x7f]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
  const names = tables.map((t) => enc((count.get(t.name) ?? 0) > 1 ? `${t.schema}.${t.name}` : t.name));
  if (new Set(names).size !== names.length) throw new InvalidOptionError('two tables would share object names; export them separately');
  return names;
}
