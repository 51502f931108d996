import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parseEncryptOption } from '../crypto/keys.js';
import { InvalidOptionError, redact } from '../errors.js';
import { finishPlan, parsePart, parsePlanFile, runPlanPart } from '../export/parts.js';
import type { S3Options } from '../store/s3.js';
import { formatBytes } from './report.js';
import { onInterrupt } from './interrupt.js';

// `segferry run --plan FILE --part K/N` and `segferry finish --plan FILE` (docs/multi-host.md).

const RUN_HELP = `segferry run: export one part of a plan file (one host of many)

Usage:
  segferry run --plan FILE --part K/N [-j N] [--encrypt E] [--json | -q] [-v] [S3 flags as for export]

Runs the K-th of N parts of the plan's units (balanced by estimated bytes; K from 1) into the
plan's destination and records what it stored there (segferry-part-K-of-N.json). Run it again
alone if it fails. Then: segferry finish --plan FILE. Make the file with
segferry plan ... --to DEST --out FILE.

A plan made with --encrypt carries the export's data key, wrapped: give every part the same
--encrypt key-file:PATH (the key file on this host) or --encrypt kms. A wrong or missing key
fails (ERR_ENCRYPTION_KEY) before anything is stored. Passwords come from PGPASSWORD or a
password file (PGPASSFILE, ~/.pgpass): the plan file has none.

Examples:
  segferry plan --source postgres://app@coord/shop --table orders --to s3://backups/shop/d1 --out plan.json
  segferry run --plan plan.json --part 1/3      # on host 1 of 3; 2/3 and 3/3 on the others
  segferry finish --plan plan.json
`;

const FINISH_HELP = `segferry finish: check every part of a plan file and write the manifest

Usage:
  segferry finish --plan FILE [--json | -q] [-v] [S3 flags as for export]

Refuses (ERR_PLAN_INCOMPLETE, naming them) while a unit is not stored or a recorded object is
missing or of another size; the manifest is written only when every part is there. The manifest
records the plan's fingerprint: finish run again with the same plan file says the export is
already finished and exits 0, writing nothing; a destination holding another export is refused
(ERR_PREFIX_NOT_EMPTY).

Examples:
  segferry finish --plan plan.json
  segferry finish --plan plan.json --json
`;

type Flags = Record<string, { type: 'string' | 'boolean'; short?: string }>;

async function loadPlan(path: unknown) {
  if (typeof path !== 'string') throw new InvalidOptionError('give --plan FILE (written by segferry plan --to DEST --out FILE)');
  return parsePlanFile(await readFile(path, 'utf8').catch((e: unknown) => { throw new InvalidOptionError(`cannot read --plan ${path}: ${(e as Error).message}`); }), path);
}

/** `segferry run`. */
export async function cmdRun(argv: string[], s3Flags: Flags, s3FromFlags: (v: Record<string, unknown>) => S3Options): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: { plan: { type: 'string' }, part: { type: 'string' }, concurrency: { type: 'string', short: 'j' }, encrypt: { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' }, verbose: { type: 'boolean', short: 'v' }, help: { type: 'boolean', short: 'h' }, ...s3Flags },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  const f = await loadPlan(v.plan);
  if (typeof v.part !== 'string') throw new InvalidOptionError('give --part K/N (K from 1; e.g. JOB_COMPLETION_INDEX + 1 of the job\'s completions)');
  const part = parsePart(v.part);
  const interrupt = onInterrupt();
  try {
    const conc = v.concurrency === undefined ? undefined : Number(v.concurrency);
    if (conc !== undefined && !(Number.isInteger(conc) && conc >= 1)) throw new InvalidOptionError('--concurrency must be a whole number of at least 1');
    const r = await runPlanPart({
      plan: f.plan, to: f.to, part, s3: s3FromFlags(v), signal: interrupt.signal,
      ...(conc ? { concurrency: conc } : {}),
      ...(v.encrypt !== undefined ? { encrypt: parseEncryptOption(v.encrypt) } : {}),
    });
    if (v.quiet && !v.json) return 0;
    process.stdout.write(redact(v.json
      ? JSON.stringify({ type: 'part-done', ...r })
      : `part ${part.k}/${part.n}: ${r.units} units (${r.kept} kept from an earlier run), ${r.rows} rows, ${formatBytes(r.bytes)} in ${r.objects} objects`) + '\n');
    return 0;
  } finally {
    interrupt.dispose();
  }
}

/** `segferry finish`. */
export async function cmdFinish(argv: string[], s3Flags: Flags, s3FromFlags: (v: Record<string, unknown>) => S3Options): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: { plan: { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' }, verbose: { type: 'boolean', short: 'v' }, help: { type: 'boolean', short: 'h' }, ...s3Flags },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(FINISH_HELP);
    return 0;
  }
  const f = await loadPlan(v.plan);
  let already = false;
  const m = await finishPlan({ plan: f.plan, to: f.to, s3: s3FromFlags(v), onEvent: (e) => { if (e.type === 'warning' && e.code === 'already-finished') already = true; } });
  const rows = m.tables.reduce((a, t) => a + t.rows, 0);
  if (v.quiet && !v.json) return 0;
  process.stdout.write(redact(v.json
    ? JSON.stringify({ type: 'finish', tables: m.tables.length, objects: m.objects.length, rows, ...(already ? { alreadyFinished: true, manifestId: m.id } : {}) })
    : already
      ? `already finished ${f.to}: its manifest (${m.id}, completed ${m.completedAt}) is this plan's: ${m.tables.length} tables, ${rows} rows in ${m.objects.length} objects; nothing written`
      : `finished ${f.to}: ${m.tables.length} tables, ${rows} rows in ${m.objects.length} objects; manifest written`) + '\n');
  return 0;
}
