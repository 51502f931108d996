// What the bench section scripts (bench/sections.ts) share: their flags, their start-up (servers
// with the bench table, some of them filled, a scratch directory) and tear-down, and the guard
// around main().
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { StaticTopology } from '../../lib/index.js';
import { BenchServer, stopAll } from './cluster.js';
import { generateSQL, ID_SPAN, TABLE, tableDDL } from './data.js';

/** A section's flags: `--rows N`, `--reps N`, `--quick`, `--help`, and its own options. */
export interface SectionFlagsSpec {
  /** What `--help` prints (one line, without the newline), then the script exits 0. */
  usage: string;
  /** Default `--rows` of a full run and of a `--quick` run. */
  rows: { full: number; quick: number };
  /** Default `--reps` of a full run and of a `--quick` run. */
  reps: { full: number; quick: number };
  /** Further options, as `parseArgs` takes them (default none). */
  options?: ParseArgsConfig['options'];
}

/** The parsed flags: `quick`, `rows` and `reps` with their defaults applied, and every raw value. */
export interface SectionFlags {
  quick: boolean;
  rows: number;
  reps: number;
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
}

/** Parse a section's command line (see {@link SectionFlagsSpec}); `--help` prints the usage and exits. */
export function sectionFlags(spec: SectionFlagsSpec): SectionFlags {
  const { values } = parseArgs({
    options: { rows: { type: 'string' }, reps: { type: 'string' }, ...spec.options, quick: { type: 'boolean' }, help: { type: 'boolean' } },
  });
  if (values.help) {
    process.stdout.write(`${spec.usage}\n`);
    process.exit(0);
  }
  const quick = values.quick === true;
  const num = (v: unknown, full: number, q: number) => Number((v as string | undefined) ?? (quick ? q : full));
  return { quick, rows: num(values.rows, spec.rows.full, spec.rows.quick), reps: num(values.reps, spec.reps.full, spec.reps.quick), values };
}

/**
 * Start the named servers and create the bench table on each, make a scratch directory
 * (`<tmp>/<dirPrefix>XXXXXX`), run `body`, then remove the directory and stop every server,
 * whatever `body` did.
 */
export async function withBenchServers<T>(names: string[], dirPrefix: string, body: (servers: BenchServer[], dir: string) => Promise<T>): Promise<T> {
  const servers = await Promise.all(names.map((n) => BenchServer.start(n)));
  const dir = await mkdtemp(path.join(os.tmpdir(), dirPrefix));
  try {
    await Promise.all(servers.map((s) => s.query(tableDDL(TABLE))));
    return await body(servers, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await stopAll();
  }
}

/**
 * Fill the bench table of each source with its share of `rows` (ids `i × ID_SPAN + 1 …`), then
 * `ANALYZE` it, or `VACUUM (FREEZE, ANALYZE)` with `freeze` (default false). Returns the rows
 * written in all: `ceil(rows / sources) × sources`.
 */
export async function fillSources(sources: BenchServer[], rows: number, opts: { freeze?: boolean } = {}): Promise<number> {
  const per = Math.ceil(rows / sources.length);
  await Promise.all(sources.map(async (s, i) => {
    const insert = `INSERT INTO ${TABLE} ${generateSQL(i * ID_SPAN + 1, i * ID_SPAN + per)}`;
    if (!opts.freeze) return s.query(`${insert}; ANALYZE ${TABLE}`);
    await s.query(insert);
    await s.query(`VACUUM (FREEZE, ANALYZE) ${TABLE}`);
  }));
  return per * sources.length;
}

/** A static topology of the servers, named dn1, dn2, … in order. */
export function staticTopology(servers: BenchServer[]): StaticTopology {
  return { nodes: servers.map((s, i) => ({ name: `dn${i + 1}`, url: s.url() })), replicated: [] };
}

/** Run a section's main: an error prints its stack on stderr and makes the exit code 1. */
export function runSection(main: () => Promise<void>): void {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
  });
}
