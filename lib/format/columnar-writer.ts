import { digestFields, ObjectHasher } from '../manifest/digest.js';
import { CopyProtocolError, InternalError, InvalidOptionError, RowTooLargeError } from '../errors.js';
import type { RowChunk } from '../pg/copy-out.js';
import type { CopyRead, FormatSummary, SegmentWriter, SegmentWriterOptions, StoredSegment } from '../segment/types.js';
import type { ObjectWriter } from '../store/types.js';
import type { BatchBuilder } from './arrow/columns.js';
import type { ColumnSpec, PgColumn } from './arrow/pgtypes.js';

/** An object being written by a {@link ColumnarSegmentWriter}; `state` is what its format's footer needs. */
export interface ColumnarFile<S> {
  key: string;
  segment: number;
  writer: ObjectWriter;
  hash: ObjectHasher;
  bytes: number;
  rows: number;
  /** Builder generation of its rows (one schema per object). */
  generation: number;
  /** Source labels of the rows it holds. */
  sources: string[];
  state: S;
}

/** An encoded unit (record batch, row group): its rows and exact stored size. */
export interface EncodedUnit {
  rows: number;
  bytes: number;
}

/** How a format names itself in errors. */
export interface ColumnarKind {
  /** `Arrow`, `Parquet`. */
  name: string;
  /** What one object is, for {@link RowTooLargeError}: `an Arrow IPC file`. */
  file: string;
  /** The hint of {@link RowTooLargeError}. */
  rowHint: string;
}

/**
 * The object lifecycle shared by the columnar {@link SegmentWriter}s (Arrow IPC, Parquet): rows
 * are built into columns (lib/format/arrow/columns.ts), each encoded into a unit whose
 * exact size is known before any byte is stored. If the open object, the unit and the footer
 * that would then be needed exceed the cap, the object gets its footer and the unit starts the
 * next one; a unit too large for an empty object is split in halves (and later units are built
 * smaller); a single row that cannot fit an empty object raises {@link RowTooLargeError}. One
 * write is in flight to the store: the next unit is built while the store takes this one.
 *
 * A format supplies the builder, the encoding (`P`: a part of a batch, `E`: its encoding), the
 * first bytes of an object, what a unit adds to the footer state `S`, and the footer.
 */
export abstract class ColumnarSegmentWriter<S, P, E extends EncodedUnit> implements SegmentWriter {
  protected readonly o: SegmentWriterOptions;
  readonly #kind: ColumnarKind;
  /** The builder of the current COPY's columns. */
  protected builder: BatchBuilder | undefined;
  #columns: PgColumn[] | undefined;
  #file: ColumnarFile<S> | undefined;
  #inflight: Promise<void> | undefined;
  /** The bytes of the write in flight (see unitsStay). */
  #inflightBuf: Buffer | undefined;
  /** The two assembly buffers used in turn (see #assemble). */
  readonly #pool: (Buffer | undefined)[] = [undefined, undefined];
  #turn = 0;
  #next = 0;
  /** Source labels of the rows in the builder, not yet placed. */
  #pending: string[] = [];
  /** Label of the current read's rows (see CopyRead.source). */
  #source: string | undefined;
  /** Chunks fully fed whose rows the builder's current batch still keeps (see deferRelease). */
  #held: RowChunk[] = [];
  #release: ((rc: RowChunk) => void) | undefined;
  readonly stored: StoredSegment[] = [];
  /** Totals over all objects so far, including the open one. */
  totalBytes = 0;
  totalRows = 0;
  /** The column specs of the latest COPY (with any text fallbacks), for the manifest summary. */
  specs: ColumnSpec[] = [];

  constructor(o: SegmentWriterOptions, kind: ColumnarKind) {
    if (!(o.cap > 0)) throw new InvalidOptionError('segment size must be positive');
    this.o = o;
    this.#kind = kind;
  }

  /**
   * True when a unit's bytes, returned by {@link add} as one part, stay untouched until the
   * unit after the next one is encoded (the format fills two output buffers in turn: Parquet's
   * row groups, lib/format/parquet/encode.ts). A store that releases writes then takes that
   * part as it is instead of a copy in an assembly buffer. Default false.
   */
  protected readonly unitsStay: boolean = false;
  /** A builder for the columns of a new COPY (its batches are encoded before the next rows are fed). */
  protected abstract newBuilder(columns: PgColumn[]): BatchBuilder;
  /** Called when a builder is replaced (a new schema). Default: nothing. */
  protected reset(): void {}
  /** Work before the first read (a codec to load). Default: nothing. */
  protected async prepare(): Promise<void> {}
  /**
   * Take the builder's rows (`take()` or `takePlain()`) as a whole part, with their builder
   * generation; undefined when there are none. `specs` are the builder's specs before taking.
   */
  protected abstract takePart(b: BatchBuilder, specs: ColumnSpec[]): { part: P; generation: number } | undefined;
  protected abstract encode(p: P, generation: number): E;
  /** The two halves of a part of more than one row. */
  protected abstract split(p: P): [P, P];
  /** Stored bytes of `f` once `e` and the footer then needed are added. */
  protected abstract bytesWith(f: ColumnarFile<S>, e: E): number;
  /** A new object for `e`: its footer state, its first bytes, and the bytes it needs with `e` and its footer. */
  protected abstract first(e: E): { state: S; head: Uint8Array[]; need: number };
  /** Record `e` in `f`'s footer state (at offset `f.bytes`) and return its bytes. */
  protected abstract add(f: ColumnarFile<S>, e: E): Uint8Array[];
  /** The footer bytes that close `f`. */
  protected abstract footer(f: ColumnarFile<S>): Uint8Array[];
  abstract summary(): FormatSummary;

  /** Number of the segment being written (or to be written next). */
  get segment(): number {
    return this.#file ? this.#file.segment : this.#next;
  }

  /** Start a read: a change of source label stores the open object first; the columns are required. */
  async begin(read: CopyRead): Promise<void> {
    if (!read.columns) throw new InternalError(`the ${this.#kind.name} writer needs the columns of each read`);
    if (read.source !== undefined && this.#source !== undefined && read.source !== this.#source) await this.cut();
    this.#source = read.source;
    await this.prepare();
    await this.beginCopy(read.columns);
  }

  /** Declare the columns of the COPY whose chunks follow (call before each COPY). */
  async beginCopy(columns: PgColumn[]): Promise<void> {
    const same = this.#columns !== undefined && this.#columns.length === columns.length &&
      this.#columns.every((c, i) => c.name === columns[i]!.name && c.oid === columns[i]!.oid && c.typmod === columns[i]!.typmod);
    if (same && this.builder) {
      if (this.builder.inCopy) throw new CopyProtocolError('previous COPY stream did not end with its trailer');
      return;
    }
    if (this.builder) await this.#flush();
    // A new builder has a new schema: never mix it into an object of the previous one.
    if (this.#file) await this.#close();
    this.reset();
    this.#columns = columns;
    this.builder = this.newBuilder(columns);
    this.specs = this.builder.specs;
  }

  /**
   * The builder keeps the current batch's chunks until the batch is taken: each goes to
   * `release` then (or at once when no row of it stays in the builder). Returns the builder's
   * batch size in COPY bytes (the chunks held at once cover that, plus up to two chunks).
   */
  deferRelease(release: (rc: RowChunk) => void): number {
    this.#release = release;
    return this.builder?.maxBytes ?? 0;
  }

  /** Add a chunk of whole COPY BINARY rows (the stream's header and trailer included). */
  async write(rc: RowChunk): Promise<void> {
    const b = this.builder;
    if (!b) throw new InternalError('begin must be called before write');
    if (this.#source !== undefined && !this.#pending.includes(this.#source)) this.#pending.push(this.#source);
    let i = 0;
    while (i < rc.rowEnds.length) {
      i = b.feed(rc.data, rc.rowEnds, i);
      if (b.full) await this.#flush();
    }
    // Rows of this chunk in the builder's batch: kept for a rebuild until the batch is taken.
    if (b.rows > 0) this.#held.push(rc);
    else this.#release?.(rc);
  }

  async #flush(): Promise<void> {
    const b = this.builder!;
    const specs = b.specs.map((s) => ({ ...s }));
    const built = this.takePart(b, specs);
    // The taken batch's columns are copies: its chunks are referred to no more.
    const held = this.#held;
    this.#held = [];
    if (this.#release) for (const rc of held) this.#release(rc);
    this.specs = b.specs;
    const sources = this.#pending;
    this.#pending = [];
    if (!built) return;
    await this.#place(built.part, built.generation, sources);
  }

  async #place(p: P, generation: number, sources: string[]): Promise<void> {
    if (this.#file && this.#file.generation !== generation) await this.#close();
    const e = this.encode(p, generation);
    const cap = this.o.cap;
    for (;;) {
      const f = this.#file;
      if (f) {
        if (this.bytesWith(f, e) <= cap) break;
        await this.#close();
        continue;
      }
      const { state, head, need } = this.first(e);
      if (need <= cap) {
        await this.#open(state, head, generation);
        break;
      }
      if (e.rows <= 1) {
        const k = this.#kind;
        throw new RowTooLargeError(
          `a row of table ${this.o.table} on node ${this.o.node} needs ${need} bytes as ${k.file}, more than the segment size ${cap}`,
          need,
          { table: this.o.table, node: this.o.node, hint: k.rowHint },
        );
      }
      // Too large for any object: split, and build smaller units from now on.
      const bld = this.builder!;
      bld.maxBytes = Math.max(1, Math.floor(bld.maxBytes / 2));
      bld.maxRows = Math.max(1, Math.min(bld.maxRows, Math.ceil(e.rows / 2)));
      const [a, b] = this.split(p);
      await this.#place(a, generation, sources);
      await this.#place(b, generation, sources);
      return;
    }
    const f = this.#file!;
    for (const x of sources) if (!f.sources.includes(x)) f.sources.push(x);
    const parts = this.add(f, e);
    f.rows += e.rows;
    this.totalRows += e.rows;
    await this.#append(f, parts);
  }

  async #append(f: ColumnarFile<S>, parts: Uint8Array[]): Promise<void> {
    const buf = this.#assemble(parts);
    f.hash.update(buf);
    f.bytes += buf.length;
    this.totalBytes += buf.length;
    // One write in flight: the next unit is built while the store takes this one, and is
    // handed over only once the store has accepted the previous one (its backpressure).
    await this.#drain();
    const w = f.writer.write(buf);
    w.catch(() => {}); // observed by #drain
    this.#inflight = w;
    this.#inflightBuf = buf;
  }

  /**
   * The parts as one buffer. Where the store is done with a chunk once its write resolves
   * (ObjectStore.releasesWrites), two buffers serve in turn: with one write in flight, the
   * other one's write has resolved before it is filled again. This saves a large allocation
   * per unit, its page faults and the garbage collections it triggers. A store that may keep
   * chunks after the write resolves (one that does not declare it, such as the encrypting view
   * of lib/crypto/objects.ts) gets a new buffer per unit. A unit of one part from a format whose
   * units stay (see unitsStay) is stored as it is, without a copy.
   */
  #assemble(parts: Uint8Array[]): Buffer {
    let size = 0;
    for (const x of parts) size += x.byteLength;
    if (this.o.store.releasesWrites !== true) return Buffer.concat(parts, size);
    if (this.unitsStay && parts.length === 1) {
      const x = parts[0]!;
      // The format's two buffers in turn: the unit being stored is never the one just encoded.
      const b = this.#inflightBuf;
      if (b && b.buffer === x.buffer && x.byteOffset < b.byteOffset + b.length && b.byteOffset < x.byteOffset + x.byteLength) {
        throw new InternalError('a unit was encoded into the bytes of the write in flight');
      }
      return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    }
    const t = this.#turn;
    this.#turn = 1 - t;
    let out = this.#pool[t];
    // An eighth of headroom, so units of slowly rising size do not reallocate every time.
    if (!out || out.length < size) out = this.#pool[t] = Buffer.allocUnsafe(size + (size >> 3));
    let p = 0;
    for (const x of parts) {
      out.set(x, p);
      p += x.byteLength;
    }
    return out.subarray(0, size);
  }

  async #drain(): Promise<void> {
    const p = this.#inflight;
    this.#inflight = undefined;
    this.#inflightBuf = undefined;
    if (p) await p;
  }

  async #open(state: S, head: Uint8Array[], generation: number): Promise<void> {
    const segment = this.#next++;
    const key = this.o.keyOf(segment);
    const f: ColumnarFile<S> = {
      key, segment, writer: this.o.store.createWriter(key, this.o.signal ? { signal: this.o.signal } : {}), hash: new ObjectHasher(this.o.checksum),
      bytes: 0, rows: 0, generation, sources: [], state,
    };
    this.#file = f;
    await this.#append(f, head);
  }

  async #close(): Promise<void> {
    const f = this.#file!;
    await this.#append(f, this.footer(f));
    this.#file = undefined;
    const seg: StoredSegment = { key: f.key, segment: f.segment, bytes: f.bytes, rows: f.rows, ...digestFields(f.hash.algorithm, f.hash.digest()) };
    if (f.sources.length > 0) seg.sources = f.sources;
    try {
      await this.#drain();
      await f.writer.finish();
    } catch (e) {
      await f.writer.abort();
      throw e;
    }
    this.stored.push(seg);
    this.o.onStored?.(seg);
  }

  /** Write the rows built so far and store the open object, if any, so the next row starts a new one (between COPYs). */
  async cut(): Promise<void> {
    if (this.builder) {
      if (this.builder.inCopy) throw new InternalError('cut inside a COPY stream');
      await this.#flush();
    }
    if (this.#file) await this.#close();
  }

  /** Write the last unit and store the open object, if any. */
  async finish(): Promise<StoredSegment[]> {
    if (this.builder) {
      if (this.builder.inCopy) throw new CopyProtocolError('COPY stream ended without its trailer');
      await this.#flush();
    }
    if (this.#file) await this.#close();
    return this.stored;
  }

  /** Abort the open object (already stored ones stay). Never throws. */
  async abort(): Promise<void> {
    const f = this.#file;
    this.#file = undefined;
    await this.#drain().catch(() => {});
    if (f) await f.writer.abort();
  }
}
