import { parseArgs } from 'node:util';
import { InvalidOptionError, redact } from '../errors.js';
import { checkExport, type MaintenanceEvent } from '../maintenance/check.js';
import type { S3Options } from '../store/s3.js';
import { formatBytes, formatRate } from './progress.js';
import { onInterrupt } from './interrupt.js';

const HELP = `segferry check: the integrity of a stored export, without a database

Usage:
  segferry check --at DEST [--read-data] [--concurrency N] [--json] [S3 flags as for export]

Reads and validates DEST's manifest, then checks that every object it names (segments, and any
other objects it lists) exists with its recorded size. With --read-data every object is read
and its digest recomputed, CRC-32 or SHA-256 as its manifest entry records (streaming, N
objects at once, default 4): only this finds a change that keeps an object's size. Objects
directly under DEST that look like segferry's but that the manifest does not name are listed
as unexpected (not a failure; see segferry cleanup).

Exit code: 0 intact, 3 damaged (missing or changed objects), 1 no readable manifest or a
storage failure, 2 usage error.

Examples:
  segferry check --at s3://backups/shop/2026-11-22
  segferry check --at /data/export --read-data --concurrency 8
`;

/** `segferry check`. */
export async function cmdCheck(argv: string[], s3Flags: Record<string, { type: 'string' | 'boolean' }>, s3FromFlags: (v: Record<string, unknown>) => S3Options): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      at: { type: 'string' }, 'read-data': { type: 'boolean' }, concurrency: { type: 'string', short: 'j' },
      json: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' }, verbose: { type: 'boolean', short: 'v' }, help: { type: 'boolean', short: 'h' }, ...s3Flags,
    },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (typeof v.at !== 'string') throw new InvalidOptionError('give --at DEST (s3://bucket/prefix or a directory)');
  const concurrency = parseConcurrency(v.concurrency);
  const json = v.json === true;
  const interrupt = onInterrupt();
  try {
    const r = await checkExport({
      at: v.at, s3: s3FromFlags(v), readData: v['read-data'] === true, signal: interrupt.signal,
      ...(concurrency !== undefined ? { concurrency } : {}),
      onEvent: (e) => progressLine(e, json, v.quiet === true),
    });
    if (json) {
      process.stdout.write(redact(JSON.stringify({ type: 'check', ...r })) + '\n');
      return r.ok ? 0 : 3;
    }
    const out: string[] = [];
    for (const o of r.missing) out.push(`  missing     ${o.key}  (${formatBytes(o.bytes)} expected)`);
    for (const o of r.changed) {
      out.push(o.reason === 'size'
        ? `  changed     ${o.key}  size ${o.actualBytes} bytes, manifest says ${o.expectedBytes}`
        : `  changed     ${o.key}  ${o.algorithm} ${o.actualDigest}, manifest says ${o.expectedDigest}`);
    }
    for (const o of r.unexpected) out.push(`  unexpected  ${o.key}  ${formatBytes(o.size)} (not in the manifest)`);
    const what = r.readData ? `${r.objects} object(s), ${formatBytes(r.bytes)}, sizes and digests (read ${formatBytes(r.bytesRead)} at ${formatRate(r.bytesRead, r.elapsedMs)})` : `${r.objects} object(s), ${formatBytes(r.bytes)}, sizes only (--read-data also compares digests)`;
    out.push(r.ok
      ? `${r.location}: export ${r.manifestId} intact: ${what}`
      : `${r.location}: export ${r.manifestId} DAMAGED: ${r.missing.length} missing, ${r.changed.length} changed of ${what}`);
    if (!v.quiet || !r.ok) process.stdout.write(redact(out.join('\n')) + '\n');
    return r.ok ? 0 : 3;
  } finally {
    interrupt.dispose();
  }
}

/** `--concurrency N`: a whole number ≥ 1, or undefined. */
export function parseConcurrency(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new InvalidOptionError('--concurrency takes a whole number from 1 to 1024');
  return n;
}

/** One event as a JSON line (--json) or a status line on stderr. */
export function progressLine(e: MaintenanceEvent, json: boolean, quiet: boolean): void {
  if (json) {
    process.stdout.write(redact(JSON.stringify(e)) + '\n');
    return;
  }
  if (quiet || e.type !== 'read-progress') return;
  process.stderr.write(`${e.operation}: ${e.objectsDone}/${e.objectsTotal} objects, ${formatBytes(e.bytesDone)} of ${formatBytes(e.bytesTotal)}\n`);
}
