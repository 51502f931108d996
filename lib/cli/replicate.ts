import { parseArgs } from 'node:util';
import { InvalidOptionError, redact } from '../errors.js';
import { replicateExport } from '../maintenance/replicate.js';
import type { S3Options } from '../store/s3.js';
import { parseConcurrency, progressLine } from './check.js';
import { formatBytes, formatRate } from './progress.js';
import { onInterrupt } from './interrupt.js';

const HELP = `segferry replicate: copy a finished export to another location, manifest last

Usage:
  segferry replicate --from SRC --to DST [--concurrency N] [--resume] [--verify] [--json]
                     [S3 flags as for export, for both sides]

Copies every object SRC's manifest names, then the manifest (with a "replicatedFrom" field), to
DST: S3 to S3 (server-side CopyObject within one endpoint and account, else streamed), S3 to a
directory and back. Every object's SHA-256 is checked against the manifest on arrival; an object
that does not match is refused and no manifest is written. DST must be empty (or --resume an
interrupted replicate: objects already there intact are kept). import and verify work on either
copy. Details: docs/replicate.md.

Options:
      --from SRC        the finished export (s3://bucket/prefix, a directory or file:// URL)
      --to DST          where the copy goes (an empty prefix)
  -j, --concurrency N   objects copied at once (default 4)
      --resume          continue an interrupted replicate into DST
      --verify          afterwards, read the copy back and check every object (as check --read-data)
  Output: --json (one JSON event per line, then a {"type":"replicate"} line)  -q/--quiet  -v/--verbose (stack traces)

Exit code: 0 done, 1 failed (e.g. ERR_CHECKSUM_MISMATCH for a tampered object), 2 usage error,
3 the --verify check found the copy damaged, 130 interrupted.

Examples:
  segferry replicate --from s3://backups/shop/2026-11-22 --to s3://backups-eu/shop/2026-11-22
  segferry replicate --from s3://backups/shop/2026-11-22 --to /mnt/archive/shop --verify
`;

/** `segferry replicate`. */
export async function cmdReplicate(argv: string[], s3Flags: Record<string, { type: 'string' | 'boolean' }>, s3FromFlags: (v: Record<string, unknown>) => S3Options): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      from: { type: 'string' }, to: { type: 'string' }, concurrency: { type: 'string', short: 'j' }, resume: { type: 'boolean' }, verify: { type: 'boolean' },
      json: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' }, verbose: { type: 'boolean', short: 'v' }, help: { type: 'boolean', short: 'h' }, ...s3Flags,
    },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (typeof v.from !== 'string') throw new InvalidOptionError('give --from SRC (a finished export)');
  if (typeof v.to !== 'string') throw new InvalidOptionError('give --to DST (an empty prefix or directory)');
  const concurrency = parseConcurrency(v.concurrency);
  const json = v.json === true;
  const quiet = v.quiet === true;
  const interrupt = onInterrupt();
  try {
    const r = await replicateExport({
      from: v.from, to: v.to, s3: s3FromFlags(v), resume: v.resume === true, verify: v.verify === true, signal: interrupt.signal,
      ...(concurrency !== undefined ? { concurrency } : {}),
      onEvent: (e) => progressLine(e, json, quiet),
    });
    const damaged = r.check !== undefined && !r.check.ok;
    if (json) {
      const { manifest: _m, ...rest } = r;
      process.stdout.write(redact(JSON.stringify({ type: 'replicate', ...rest })) + '\n');
      return damaged ? 3 : 0;
    }
    const lines = r.alreadyDone
      ? [`${r.to}: already holds this export's copy (manifest ${r.manifestId}): nothing to do`]
      : [
        `replicated ${r.from} → ${r.to} (manifest ${r.manifestId})`,
        `  objects   ${r.objects} (${r.serverSide} server-side, ${r.streamed} streamed, ${r.skipped} already there)`,
        `  bytes     ${r.bytes} (${formatBytes(r.bytes)})`,
        `  elapsed   ${(r.elapsedMs / 1000).toFixed(1)} s, ${formatRate(r.bytes, r.elapsedMs)}`,
      ];
    if (r.check) {
      const c = r.check;
      lines.push(c.ok ? `  verify    every object's size and SHA-256 match` : `  verify    DAMAGED: ${c.missing.map((o) => o.key).concat(c.changed.map((o) => o.key)).join(', ')}`);
    }
    if (!quiet || damaged) process.stdout.write(redact(lines.join('\n')) + '\n');
    return damaged ? 3 : 0;
  } finally {
    interrupt.dispose();
  }
}
