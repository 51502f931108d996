import { parseArgs } from 'node:util';
import { InvalidOptionError, redact } from '../errors.js';
import { cleanup } from '../maintenance/cleanup.js';
import { formatBytes } from './report.js';

const HELP = `segferry cleanup: list (and with --yes remove) leftovers of failed runs under a prefix

Usage:
  segferry cleanup --at DEST [--yes] [--json] [S3 flags as for export]

Lists segment objects that no manifest references (all of segferry's objects when the prefix
has no manifest, i.e. an unfinished export) and multipart uploads left open, where the store
can list them. Objects that are not segferry's are never touched.

Examples:
  segferry cleanup --at s3://backups/shop/2026-11-22
  segferry cleanup --at /data/export --yes
`;

/** `segferry cleanup`. */
export async function cmdCleanup(argv: string[], s3Flags: Record<string, { type: 'string' | 'boolean' }>, s3FromFlags: (v: Record<string, unknown>) => import('../store/s3.js').S3Options): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: { at: { type: 'string' }, yes: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...s3Flags },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (typeof v.at !== 'string') throw new InvalidOptionError('give --at DEST (s3://bucket/prefix or a directory)');
  const r = await cleanup({ location: v.at, s3: s3FromFlags(v), yes: v.yes === true });
  if (v.json) {
    process.stdout.write(redact(JSON.stringify({ type: 'cleanup', ...r })) + '\n');
    return 0;
  }
  const out: string[] = [`${r.location}: ${r.hasManifest ? 'finished export' : 'no manifest (unfinished or not an export)'}`];
  for (const o of r.objects) out.push(`  object  ${o.key}  ${formatBytes(o.size)}`);
  for (const u of r.uploads) out.push(`  upload  ${u.key}  ${u.uploadId}${u.initiated ? `  started ${u.initiated}` : ''}`);
  if (r.uploadsUnsupported) out.push(`  (open multipart uploads cannot be listed here: ${r.uploadsUnsupported})`);
  const n = r.objects.length + r.uploads.length;
  out.push(n === 0 ? 'nothing to clean up' : r.removed ? `removed ${n} leftover(s)` : `${n} leftover(s); run again with --yes to remove them`);
  process.stdout.write(redact(out.join('\n')) + '\n');
  return 0;
}
