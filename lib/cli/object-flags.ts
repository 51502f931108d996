/**
 * How objects are stored: export's `--compress`, `--extension`, `--arrow-compression` and
 * `--object-checksum`, shared
 * by `export` and `copy --via` (which stages objects exactly as export writes them). Values are
 * checked by planExport, the one place that knows which format takes which.
 */
import type { ParseArgsConfig } from 'node:util';
import type { PlanOptions } from '../export/plan.js';
import { parseCompression } from '../format/compress.js';
import { parseObjectChecksum } from '../manifest/digest.js';

/** The flags (parseArgs options). */
export const OBJECT_FLAGS = {
  compress: { type: 'string' },
  extension: { type: 'boolean' },
  'arrow-compression': { type: 'string' },
  'object-checksum': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Their help lines, in the column layout of every command's help. */
export const OBJECT_FLAGS_HELP = `      --compress C         gzip, zstd or none (default): text, csv and binary objects stored
                           compressed, each a whole stream that gzip -dc / zstd -dc reads alone
      --extension          object keys end with the format's extension: .txt .csv .bin .arrow,
                           then .gz / .zst (orders_dn1_segment.0.csv.gz); default: none
      --arrow-compression C  zstd, lz4 or none (default): Arrow record batch bodies compressed
                           (Arrow BodyCompression ZSTD / LZ4_FRAME; any Arrow reader opens them)
      --object-checksum A  crc32 or sha256: the digest the manifest records of each object
                           (default crc32 where Node has zlib.crc32, else sha256)
`;

/** Parsed flag values, as parseArgs returns them. */
export interface ObjectFlagValues {
  compress?: string | undefined;
  extension?: boolean | undefined;
  'arrow-compression'?: string | undefined;
  'object-checksum'?: string | undefined;
}

/** True when any of the flags was given. */
export function hasObjectFlags(v: ObjectFlagValues): boolean {
  return v.compress !== undefined || v.extension !== undefined || v['arrow-compression'] !== undefined || v['object-checksum'] !== undefined;
}

/** The plan options the given flags ask for (absent flags: absent options, so the defaults apply). */
export function objectOptionsOf(v: ObjectFlagValues): Pick<PlanOptions, 'compress' | 'extension' | 'arrowCompression' | 'objectChecksum'> {
  const o: Pick<PlanOptions, 'compress' | 'extension' | 'arrowCompression' | 'objectChecksum'> = {};
  if (v.compress !== undefined) o.compress = parseCompression(v.compress) ?? 'none';
  if (v.extension) o.extension = true;
  if (v['arrow-compression'] !== undefined) o.arrowCompression = v['arrow-compression'] as NonNullable<PlanOptions['arrowCompression']>;
  if (v['object-checksum'] !== undefined) o.objectChecksum = parseObjectChecksum(v['object-checksum']);
  return o;
}
