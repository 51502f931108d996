import { parseArgs } from 'node:util';
import { InvalidOptionError, redact } from '../errors.js';
import { CHECKPOINT_KEY } from '../manifest/keys.js';
import { cleanup } from '../maintenance/cleanup.js';
import { formatBytes } from './report.js';

const HELP = `segferry cleanup: list (and with --yes remove) leftovers of failed runs under a prefix

Usage:
  segferry cleanup --at DEST [--yes [--remove-claim] [--remove-rejects]] [--json | -q] [-v] [S3 flags as for export]

Lists segment objects directly under DEST that its manifest or checkpoint names but no manifest
references (leftovers of failed runs), and their multipart uploads left open, where the store
can list them. Anything else, even if it looks like segferry's (nested exports, other jobs'
segments), is listed as "left alone" and never touched.

While DEST holds a claim (segferry-claim.json: a run is writing there, or died), --yes removes
nothing; add --remove-claim once you know that run is gone, to remove its leftovers and claim.

Rejects objects (segferry-rejects.<node>.<object>.jsonl: rows a destination refused under
import --reject-limit) are listed but kept; --yes --remove-rejects removes them too.

Examples:
  segferry cleanup --at s3://backups/shop/2026-11-22
  segferry cleanup --at /data/export --yes
`;

/** `segferry cleanup`. */
export async function cmdCleanup(argv: string[], s3Flags: Record<string, { type: 'string' | 'boolean' }>, s3FromFlags: (v: Record<string, unknown>) => import('../store/s3.js').S3Options): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: { at: { type: 'string' }, yes: { type: 'boolean' }, 'remove-claim': { type: 'boolean' }, 'remove-rejects': { type: 'boolean' }, json: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' }, verbose: { type: 'boolean', short: 'v' }, help: { type: 'boolean', short: 'h' }, ...s3Flags },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (typeof v.at !== 'string') throw new InvalidOptionError('give --at DEST (s3://bucket/prefix or a directory)');
  const r = await cleanup({ location: v.at, s3: s3FromFlags(v), yes: v.yes === true, removeClaim: v['remove-claim'] === true, removeRejects: v['remove-rejects'] === true });
  if (v.json) {
    process.stdout.write(redact(JSON.stringify({ type: 'cleanup', ...r })) + '\n');
    return 0;
  }
  if (v.quiet) return 0;
  const out: string[] = [`${r.location}: ${r.hasManifest ? 'finished export' : 'no manifest (unfinished or not an export)'}`];
  for (const o of r.objects) {
    // The checkpoint is what --resume continues from: removing it gives the export up.
    const note = o.key === CHECKPOINT_KEY && !r.removed ? '  (an unfinished export: segferry export … --resume continues it; removing this gives that up)' : '';
    out.push(`  object  ${o.key}  ${formatBytes(o.size)}${note}`);
  }
  for (const u of r.uploads) out.push(`  upload  ${u.key}  ${u.uploadId}${u.initiated ? `  started ${u.initiated}` : ''}`);
  if (r.uploadsUnsupported) out.push(`  (open multipart uploads cannot be listed here: ${r.uploadsUnsupported})`);
  for (const o of r.leftAlone) out.push(`  left alone: ${o.key}`);
  for (const o of r.rejects) out.push(`  rejects ${o.key}  ${formatBytes(o.size)}${r.removed && v['remove-rejects'] ? '  (removed)' : '  (kept: rows refused on import; --remove-rejects removes them)'}`);
  if (r.claim) out.push(`  claim   ${r.claim.runId}  ${r.claim.operation} on ${r.claim.host}, pid ${r.claim.pid}, since ${r.claim.createdAt}${r.removed ? '  (removed)' : ''}`);
  const n = r.objects.length + r.uploads.length;
  if (r.claim && !r.removed && v.yes === true) out.push(`nothing removed: a run holds this prefix; if it is gone, run again with --yes --remove-claim`);
  else out.push(n === 0 ? 'nothing to clean up' : r.removed ? `removed ${n} leftover(s)` : `${n} leftover(s); run again with --yes${r.claim ? ' --remove-claim (a run holds this prefix: only once it is gone)' : ''} to remove them`);
  process.stdout.write(redact(out.join('\n')) + '\n');
  return 0;
}
