/**
 * A CLI run killed at a chosen point: the choreography the resume tests share (copy --via,
 * plain and compressed). One source node's export is held back half-way ({@link stallExport}),
 * the run is started, its observable state (ledger rows, objects, the checkpoint) is polled
 * until the test's condition holds, and the process then gets SIGKILL, so none of its own
 * cleanup runs ({@link killWhenReady}).
 */
import type { ChildProcess } from 'node:child_process';
import { runCli, type CliResult } from './cli.js';
import type { PgServer } from './pg.js';

/** A source node's export held back at one row: the `--where` to give, and how to let go. */
export interface Stall {
  /** The filter: true for every row, after `seconds` of sleep at the chosen row while held. */
  where: string;
  /** Stop holding (new sessions do not wait) and end the sessions still asleep in their export. */
  release(): Promise<void>;
}

/**
 * Hold `node`'s export for `seconds` (default 60) at the row `ctid` (e.g. `'(150,1)'`), only
 * while the database setting `segferry_test.stall` is on there, which this sets: other nodes,
 * given the same `where`, do not wait, and neither does a rerun after {@link Stall.release}, with
 * the same `where` and so the same plan. Set before the run starts: the setting reaches new
 * sessions only.
 */
export async function stallExport(node: PgServer, ctid: string, seconds = 60): Promise<Stall> {
  const [{ d }] = (await node.query<{ d: string }>('SELECT current_database() AS d')) as [{ d: string }];
  await node.query(`ALTER DATABASE "${d}" SET segferry_test.stall = 'on'`);
  return {
    where: `CASE WHEN ctid = '${ctid}'::tid AND current_setting('segferry_test.stall', true) = 'on' THEN (SELECT true FROM pg_sleep(${seconds})) ELSE true END`,
    release: async () => {
      await node.query(`ALTER DATABASE "${d}" RESET segferry_test.stall`);
      await node.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'segferry export' AND pid <> pg_backend_pid()`);
    },
  };
}

/** What {@link killWhenReady} saw: whether `ready` held before the kill, and how the run ended. */
export interface Killed {
  ready: boolean;
  result: CliResult;
}

/** Options of {@link killWhenReady}. */
export interface KillOptions {
  /** Runs once `ready` held, just before the kill (to look at the state the kill leaves). */
  before?: () => Promise<void>;
  /** Polls of `ready`, 100 ms apart (default 600: 60 s). */
  tries?: number;
}

/**
 * Run `segferry ...args`, poll `ready()` until it holds, then SIGKILL the process. Polling
 * stops early when the process ends by itself (then `ready` is false and `result` says why).
 * The process is killed whatever happens, `before` throwing included, so no run outlives the
 * test.
 */
export async function killWhenReady(args: string[], ready: () => Promise<boolean>, opts: KillOptions = {}): Promise<Killed> {
  let child: ChildProcess | undefined;
  let ended = false;
  const run = runCli(args, { onSpawn: (c) => { child = c; } }).finally(() => { ended = true; });
  let ok = false;
  try {
    for (let i = 0; i < (opts.tries ?? 600) && !ended; i++) {
      if ((ok = await ready())) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (ok) await opts.before?.();
  } finally {
    child?.kill('SIGKILL');
    await run;
  }
  return { ready: ok, result: await run };
}
