import { InvalidOptionError } from '../errors.js';
import { OWN_BUFFER } from '../store/s3-upload.js';
import type { NodePages, RelationPages } from '../topology/pages.js';
import type { RelationRead, StreamPlan, StreamScan, TablePlan } from '../topology/types.js';

// How many ctid page-range streams read one table on one node (docs/streams.md). Pure.

/**
 * `auto` gives one stream per this many bytes of the relation. 256 MiB: a second stream pays off
 * from about two seconds of server work (≈ 90 MB/s per core, FACTS.md), and every stream costs a
 * session and its own buffers (docs/memory.md). At 64 MiB the 3-node benchmark on this 2-core
 * machine read each 333 MB node in 5 streams: 0.74–0.78× psql's rate against 0.95× with one
 * stream, and twice the client memory (bench, 2026-11-30).
 */
export const AUTO_STREAM_BYTES = 256 * 1024 * 1024;
/** `auto` never gives more streams than this (nor than the node's max_parallel_workers). */
export const AUTO_STREAM_MAX = 8;
/** TID range scans (`ctid >= … AND ctid < …` reading only those pages) exist from PostgreSQL 14. */
export const TID_RANGE_SCAN_VERSION = 140000;

/** `--streams`: a count of at least 1, or `auto`. */
export type StreamsOption = number | 'auto';

/** Check a streams option. */
export function checkStreams(s: unknown): StreamsOption {
  if (s === 'auto') return s;
  if (typeof s === 'number' && Number.isInteger(s) && s >= 1 && s <= 1024) return s;
  throw new InvalidOptionError(`streams must be 'auto' or a whole number from 1 to 1024 (got ${JSON.stringify(s)})`);
}

/**
 * Whether a (table, node) could get more than one stream before asking the node: not when
 * one was asked, not for replicated tables (a lost node falls back to a replica, which is done
 * per whole node), not under `auto` below two steps. Citus shards of one worker are settled
 * here too ({@link citusShardStreams}). Returns the plan entry when that settles it, else
 * undefined (probe the node).
 */
export function streamsWithoutProbe(t: Pick<TablePlan, 'distribution'>, node: string, reads: readonly RelationRead[], asked: StreamsOption): StreamPlan | undefined {
  const one = (note?: string): StreamPlan => (note ? { node, streams: 1, note } : { node, streams: 1 });
  if (asked === 1) return one();
  if (reads.some((r) => r.shardId !== undefined) && t.distribution.kind !== 'replicated') return citusShardStreams(node, reads, asked);
  if (reads.length !== 1 || reads[0]!.shardId !== undefined) return one(reads.some((r) => r.shardId !== undefined) ? 'Citus shards of one worker are read one after another in one session' : 'several relations on this node are read one after another');
  if (t.distribution.kind === 'replicated') return one('replicated table: read in one stream so that a lost node can fall back to a replica');
  if (asked === 'auto' && reads[0]!.estimatedBytes < 2 * AUTO_STREAM_BYTES) return one();
  return undefined;
}

/**
 * Citus: the shards of one worker read by several sessions at once, whole shards each (a
 * shard's own ctid ranges are not used), all in one snapshot of the worker. `auto`: one
 * stream per 256 MiB of the worker's shards, at least 1, at most 8 (the worker is not asked
 * for max_parallel_workers); a number N: N. Never more streams than shards. Pure.
 */
export function citusShardStreams(node: string, reads: readonly Pick<RelationRead, 'estimatedBytes'>[], asked: StreamsOption): StreamPlan {
  const bytes = reads.reduce((a, r) => a + r.estimatedBytes, 0);
  const want = asked === 'auto' ? Math.min(Math.max(1, Math.floor(bytes / AUTO_STREAM_BYTES)), AUTO_STREAM_MAX) : asked;
  const streams = Math.min(want, reads.length);
  return streams > 1 ? { node, streams } : { node, streams: 1, note: 'Citus shards of one worker are read one after another in one session' };
}

/**
 * The shards of one worker dealt to `streams` streams: biggest shard first, each to the
 * stream with the fewest estimated bytes so far (ties: the lowest stream); each stream keeps
 * the plan's order of its shards. Deterministic, so every run and part cuts them the same way.
 * Returns the read indexes of each stream. Pure.
 */
export function dealShards(reads: readonly Pick<RelationRead, 'estimatedBytes'>[], streams: number): number[][] {
  const out = Array.from({ length: Math.max(1, Math.min(streams, reads.length)) }, () => ({ bytes: 0, idx: [] as number[] }));
  const order = reads.map((r, i) => ({ b: r.estimatedBytes, i })).sort((a, b) => b.b - a.b || a.i - b.i);
  for (const { b, i } of order) {
    const s = out.reduce((best, x) => (x.bytes < best.bytes ? x : best), out[0]!);
    s.bytes += b;
    s.idx.push(i);
  }
  return out.map((s) => s.idx.sort((a, b) => a - b));
}

/**
 * The streams of a single-relation (table, node) from the node's answers. Ranges need a
 * server ≥ 14, a heap table or materialized view (views, foreign and partitioned tables and
 * Citus columnar have no usable ctid) and at least 2 pages. `auto`: one stream per 256 MiB of
 * the relation, at least 1, at most min(max_parallel_workers, 8); a number N: min(N, pages).
 */
export function decideStreams(node: string, read: Pick<RelationRead, 'estimatedBytes'>, probe: Pick<NodePages, 'serverVersion' | 'maxParallelWorkers'> & Partial<Pick<NodePages, 'sharedBuffers'>>, rel: RelationPages, asked: StreamsOption): StreamPlan {
  const one = (note: string): StreamPlan => ({ node, streams: 1, pages: rel.pages, note });
  if (probe.serverVersion < TID_RANGE_SCAN_VERSION) return one(`server version ${probe.serverVersion} has no TID range scan (needs PostgreSQL 14)`);
  const kinds: Record<string, string> = { v: 'a view', f: 'a foreign table', p: 'a partitioned table', '': 'not found by the page probe' };
  if (rel.relkind !== 'r' && rel.relkind !== 'm') return one(`${kinds[rel.relkind] ?? `relkind ${rel.relkind}`} has no ctid page ranges`);
  if (rel.accessMethod !== 'heap') return one(`access method ${rel.accessMethod || 'none'} has no ctid page ranges`);
  if (rel.pages < 2) return one(`too small for ranges (${rel.pages} page${rel.pages === 1 ? '' : 's'})`);
  const want = asked === 'auto'
    ? Math.min(Math.max(1, Math.floor(read.estimatedBytes / AUTO_STREAM_BYTES)), Math.max(1, Math.min(probe.maxParallelWorkers, AUTO_STREAM_MAX)))
    : asked;
  const streams = Math.min(want, rel.pages);
  return streams > 1 && probe.sharedBuffers !== undefined ? { node, streams, pages: rel.pages, sharedBuffers: probe.sharedBuffers } : { node, streams, pages: rel.pages };
}

/**
 * `auto` reads a (table, node)'s ranges as filtered sequential scans with at most this many
 * streams. Every such stream reads the whole relation (its range a filter), so the server pays
 * the read-and-skip part of a scan once per stream: ≈ 0.19 of a whole COPY's CPU (a scan whose
 * filter matches no row against a full COPY, 1.5M rows, 570 MB, bench/streams-server.ts), so N
 * streams cost ≈ N × 0.19 + 0.81. TID range scans of a relation larger than shared_buffers cost
 * ≈ 1.3–1.7 × the COPY (no bulk-read ring) with a 256 MB pool. Per stream on as many cores:
 * 0.19 + 0.81 / N against 1.3–1.7 / N, so the filtered scans win up to N ≈ 4 (docs/streams.md).
 * With a 16 MB pool both scans cost about one COPY (2 streams: 3.51 server CPU-s filtered, 3.36
 * TID ranges, psql 3.37): the choice matters little there.
 */
export const SEQ_FILTER_MAX_STREAMS = 4;

/** `streamScan`: `auto` ({@link chooseScan}), or one way for every (table, node) read in streams. */
export type StreamScanOption = 'auto' | StreamScan;

/** Check a streamScan option; `name`: how the error names it (the CLI's `--stream-scan`). */
export function checkStreamScan(s: unknown, name = 'streamScan'): StreamScanOption {
  if (s === 'auto' || s === 'seq-filter' || s === 'tid-range') return s;
  throw new InvalidOptionError(`${name} must be auto, seq-filter or tid-range (got ${JSON.stringify(s)})`);
}

/** True for a plan's `scan` field (plan files are untrusted): absent, `seq-filter` or `tid-range`. */
export function validStreamScan(v: unknown): v is StreamScan | undefined {
  return v === undefined || v === 'seq-filter' || v === 'tid-range';
}

/**
 * How `streams` streams read a relation of `pages` pages on a node with `sharedBuffers` pages of
 * shared_buffers (NBuffers). `auto`: `seq-filter` when the relation is larger than NBuffers, so it
 * cannot stay in the pool (a TID range scan in PostgreSQL 15 never takes the bulk-read ring, so
 * each of its pages then goes through the whole pool, clock sweep and eviction, while a sequential
 * scan reuses a 256 KiB ring), and `streams` ≤ {@link SEQ_FILTER_MAX_STREAMS}; else `tid-range`
 * (also when NBuffers is unknown). Not from NBuffers / 4, where PostgreSQL gives a sequential scan
 * the ring (heapam.c initscan): between NBuffers / 4 and NBuffers the ring rereads the table from
 * the OS's cache every time while TID ranges find it in the pool, and measured there (400k rows,
 * 18,517 pages, shared_buffers 256 MB = 32,768 pages) 2 filtered streams cost 1.85 server CPU-s
 * against 1.59 for TID ranges (two psql halves: 1.82 against 1.47). A forced option is taken as
 * is. Pure.
 */
export function chooseScan(pages: number, streams: number, sharedBuffers: number | undefined, option: StreamScanOption = 'auto'): StreamScan {
  if (option !== 'auto') return option;
  if (sharedBuffers === undefined || !(sharedBuffers > 0)) return 'tid-range';
  return pages > sharedBuffers && streams <= SEQ_FILTER_MAX_STREAMS ? 'seq-filter' : 'tid-range';
}

/**
 * First page of each of `streams` equal ranges over `pages` pages (strictly increasing, from 0;
 * streams ≤ pages): the cut of plans and checkpoints written before {@link rangeCut}, one range
 * per stream.
 */
export function pageStarts(pages: number, streams: number): number[] {
  return Array.from({ length: streams }, (_, i) => Math.floor((i * pages) / streams));
}

/**
 * The smallest page range {@link rangeCut} cuts, in heap pages: 512, 4 MiB of PostgreSQL's
 * default 8 KiB pages, ≈ 0.05 s of one server core at ≈ 90 MB/s (FACTS.md). The streams of a
 * node end at most about one such range apart; each range costs a COPY statement and at least
 * one object of its own. 2048 (16 MiB) left the two streams of a 400k-row table 261 ms apart
 * at their ends, 512 left them 40 ms apart (bench/streams-timeline.ts, docs/streams.md).
 */
export const MIN_RANGE_PAGES = 512;
/** {@link rangeCut} never cuts a (table, node) into more ranges than this (the floor grows instead). */
export const MAX_RANGES = 256;

/**
 * The page ranges of a (table, node) read in `streams` streams, as the first page of each
 * (strictly increasing, from 0; the last range is open-ended). Guided self-scheduling: the
 * node's sessions take the ranges in order as each finishes its previous one, and each range
 * is ≈ remaining / (2 × streams) pages, so the first are large and the last short and the
 * streams end close together. Floor: `minPages` (default {@link MIN_RANGE_PAGES}), raised to
 * pages / (`maxRanges` − 1) for huge relations, so there are at most `maxRanges` ranges
 * (default {@link MAX_RANGES}; 2 × streams if more). The last pages are one range when at most
 * the floor, else two halves, so no range is shorter than half the floor and the sizes never
 * grow. A relation under streams × `minPages` pages gets one equal range per stream (as
 * {@link pageStarts}); one stream, or fewer than 2 pages: one range. Deterministic: the same
 * plan gives the same cut. Pure.
 */
export function rangeCut(pages: number, streams: number, minPages = MIN_RANGE_PAGES, maxRanges = MAX_RANGES): number[] {
  const n = Math.min(streams, pages);
  if (n <= 1) return [0];
  if (pages < n * minPages) return pageStarts(pages, n);
  const floor = Math.max(minPages, Math.ceil(pages / (Math.max(maxRanges, 2 * n) - 1)));
  const starts: number[] = [];
  let at = 0;
  while (at < pages) {
    starts.push(at);
    const left = pages - at;
    if (left <= floor) break;
    if (left < 2 * floor) {
      starts.push(at + Math.ceil(left / 2));
      break;
    }
    at += Math.max(Math.ceil(left / (2 * n)), floor);
  }
  return starts;
}

/**
 * True for range starts as {@link rangeCut} gives them: at least 2 whole page numbers, the
 * first 0, strictly increasing. Plan files and checkpoints are untrusted, and the starts
 * become ctid literals in SQL.
 */
export function validRangeStarts(v: unknown): v is number[] {
  return Array.isArray(v) && v.length >= 2 && v[0] === 0 && v.every((x, i) => Number.isSafeInteger(x) && (i === 0 || x > v[i - 1]));
}

/** Check a `minRangePages` option: a whole number of at least 1. */
export function checkMinRangePages(p: unknown): number {
  if (typeof p === 'number' && Number.isSafeInteger(p) && p >= 1) return p;
  throw new InvalidOptionError(`minRangePages must be a whole number of at least 1 (got ${JSON.stringify(p)})`);
}

/**
 * Give every (table, node) read in page-range streams its scan ({@link chooseScan}, by `scan`,
 * default `auto`) and its ranges, once the stream counts are final: `tid-range`, the guided cut
 * ({@link rangeCut}, floor `minPages`, default {@link MIN_RANGE_PAGES}); `seq-filter`, one equal
 * range per stream ({@link pageStarts}: each range costs a scan of the whole relation, so no
 * queue of shrinking ranges). Changes `tables` in place.
 */
export function cutRanges(tables: readonly Pick<TablePlan, 'streams'>[], minPages = MIN_RANGE_PAGES, scan: StreamScanOption = 'auto'): void {
  checkMinRangePages(minPages);
  checkStreamScan(scan);
  for (const t of tables) {
    for (const s of t.streams ?? []) {
      if (s.streams <= 1 || s.pages === undefined) continue;
      s.scan = chooseScan(s.pages, s.streams, s.sharedBuffers, scan);
      s.ranges = s.scan === 'seq-filter' ? pageStarts(s.pages, Math.min(s.streams, s.pages)) : rangeCut(s.pages, s.streams, minPages);
    }
  }
}

/**
 * `auto` keeps the client memory of the streams reading at once within this: Σ over nodes of
 * the most streams a table has there (the default concurrency, so the streams that read at
 * once) × {@link streamMemory} ≤ 256 MiB, so ≈ 28–31 streams in all (fewer per node:
 * {@link AUTO_STREAM_MAX}). S3 parts are not per stream: every upload fills and sends its parts
 * in the store's shared `uploadMemory` (72 MiB by default), which comes on top (docs/memory.md).
 * Explicit `--streams N` and `--concurrency` are not capped.
 */
export const AUTO_STREAMS_MEMORY = 256 * 1024 * 1024;

/** Client memory of one stream besides its upload buffers: COPY blocks (≈ 6.25 MiB, docs/memory.md) and the socket's read buffer, rounded up. */
export const STREAM_BASE_MEMORY = 8 * 1024 * 1024;

/**
 * Memory one reading stream holds for its destination: {@link STREAM_BASE_MEMORY} plus what its
 * open object holds of its own: 256 KiB for S3 (an upload's own buffer; the parts it fills are
 * the store's shared pool, lib/store/s3-upload.ts) and 1 MiB for a directory. Pure.
 */
export function streamMemory(dest: { s3: boolean }): number {
  return STREAM_BASE_MEMORY + (dest.s3 ? OWN_BUFFER : 1024 * 1024);
}

/**
 * Lower `auto` stream counts until the streams reading at once fit the ceiling:
 * Σ over nodes of the most streams a table has there × `perStream` ≤ `budget`. The node with the
 * most streams gives one up first (ties: the last such node in `tables`' order), never below 1;
 * each of that node's tables keeps at most the node's new count, with a note saying why.
 * Changes `tables` in place and returns the number of streams that read at once. Pure apart
 * from that.
 */
export function capAutoStreams(tables: readonly Pick<TablePlan, 'streams'>[], perStream: number, budget = AUTO_STREAMS_MEMORY): number {
  const most = new Map<string, number>();
  for (const t of tables) for (const s of t.streams ?? []) most.set(s.node, Math.max(most.get(s.node) ?? 1, s.streams));
  const nodes = [...most.keys()];
  const allowed = Math.max(nodes.length, Math.floor(budget / perStream));
  let total = [...most.values()].reduce((a, b) => a + b, 0);
  while (total > allowed) {
    let top = nodes[0]!;
    for (const n of nodes) if (most.get(n)! >= most.get(top)!) top = n;
    most.set(top, most.get(top)! - 1);
    total--;
  }
  const mib = (b: number) => `${Math.round(b / (1024 * 1024))} MiB`;
  for (const t of tables) {
    for (const s of t.streams ?? []) {
      const cap = most.get(s.node)!;
      if (s.streams > cap) {
        s.note = `--streams auto gave ${s.streams} streams, lowered to ${cap}: the streams reading at once may hold at most ${mib(budget)} of client memory, ${mib(perStream)} each (docs/memory.md)`;
        s.streams = cap;
      }
    }
  }
  return total;
}
