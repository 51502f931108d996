/**
 * How objects are stored: export's `--compress`, `--extension` and `--arrow-compression`, shared
 * by `export` and `copy --via` (which stages objects exactly as export writes them). Values are
 * checked by planExport, the one place that knows which format takes which.
 */
import type { ParseArgsConfig } from 'node:util';
import type { PlanOptions } from '../export/plan.js';
import { parseCompression } from '../format/compress.js';

/** The flags (parseArgs options). */
export const OBJECT_FLAGS = {
  compress: { type: 'string' },
  extension: { type: 'boolean' },
  'arrow-compression': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Their help lines, in the column layout of every command's help. */
export const OBJECT_FLAGS_HELP = `      --compress C         gzip, zstd or none (default): text, csv and binary objects stored
                           compressed, each a whole stream that gzip -dc / zstd -dc reads alone
      --extension          object keys end with the format's extension: .txt .csv .bin .arrow,
                           then .gz / .zst (orders_dn1_segment.0.csv.gz); default: none
      --arrow-compression C  zstd, lz4 or none (default): Arrow record batch bodies compressed
                           (Arrow BodyCompression ZSTD / LZ4_FRAME; any Arrow reader opens them)
`;

/** Parsed flag values, as parseArgs returns them. */
export interface ObjectFlagValues {
  compress?: string | undefined;
  extension?: boolean | undefined;
  'arrow-compression'?: string | undefined;
}

/** True when any of the flags was given. */
export function hasObjectFlags(v: ObjectFlagValues): boolean {
  return v.compress !== undefined || v.extension !== undefined || v['arrow-compression'] !== undefined;
}

/** The plan options the given flags ask for (absent flags: absent options, so the defaults apply). */
export function objectOptionsOf(v: ObjectFlagValues): Pick<PlanOptions, 'compress' | 'extension' | 'arrowCompression'> {
  const o: Pick<PlanOptions, 'compress' | 'extension' | 'arrowCompression'> = {};
  if (v.compress !== undefined) o.compress = parseCompression(v.compress) ?? 'none';
  if (v.extension) o.extension = true;
  if (v['arrow-compression'] !== undefined) o.arrowCompression = v['arrow-compression'] as NonNullable<PlanOptions['arrowCompression']>;
  return o;
}
