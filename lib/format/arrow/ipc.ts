import { Message, RecordBatchFileWriter, type CompressionType, type RecordBatch, type Schema } from 'apache-arrow';

/**
 * Arrow IPC file bytes, produced piece by piece so that a writer knows an object's exact
 * size before it commits a record batch to it.
 *
 * An IPC file (Arrow columnar spec, "IPC File Format") is: `ARROW1` + 2 padding bytes, the
 * stream format (a Schema message, then record batch messages, then the end-of-stream
 * marker), a Footer flatbuffer (the schema again and one Block per batch: offset, metadata
 * length, body length), the footer's int32 length, and `ARROW1`. Record batch messages do not
 * depend on where they sit, so a batch is encoded once and placed into whichever object it
 * fits. Unlike apache-arrow's own file writer, the schema message is written after the magic
 * (as Arrow C++ does), so the object can also be read front to back as a stream.
 *
 * This subclass of apache-arrow's RecordBatchFileWriter reuses its message, body and footer
 * encoding and only captures the bytes instead of queueing them (the library's queue has no
 * backpressure).
 */
class Encoder extends RecordBatchFileWriter {
  #out: Uint8Array[] = [];
  #len = 0;

  constructor(compression: CompressionType | null) {
    super(compression === null ? {} : { compressionType: compression });
  }

  protected override _write(chunk: ArrayBufferView | ArrayBuffer): this {
    const u8 = chunk instanceof Uint8Array ? chunk
      : ArrayBuffer.isView(chunk) ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      : new Uint8Array(chunk);
    if (u8.byteLength > 0) {
      this.#out.push(u8);
      this.#len += u8.byteLength;
      this._position += u8.byteLength;
    }
    return this;
  }

  #take(): EncodedBytes {
    const r = { chunks: this.#out, bytes: this.#len };
    this.#out = [];
    this.#len = 0;
    return r;
  }

  /** Magic, padding and the Schema message. */
  header(schema: Schema): EncodedBytes {
    this._position = 0;
    this._writeMagic()._writePadding(2)._writeMessage(Message.from(schema));
    return this.#take();
  }

  /** One record batch message, position-independent. */
  batch(batch: RecordBatch): EncodedBatch {
    this._position = 0;
    this._recordBatchBlocks = [];
    this._writeRecordBatch(batch);
    const block = this._recordBatchBlocks[0]!;
    const enc = this.#take();
    return { ...enc, rows: batch.numRows, metaDataLength: block.metaDataLength, bodyLength: Number(block.bodyLength) };
  }

  /** End-of-stream marker, footer, footer length and magic, for batches at the given offsets. */
  footer(schema: Schema, blocks: FileBlockLike[]): EncodedBytes {
    // Footer.encode reads only offset, metaDataLength and bodyLength of each block.
    this._position = 0;
    this._dictionaryBlocks = [];
    this._recordBatchBlocks = blocks as never;
    this._writeFooter(schema);
    this._recordBatchBlocks = [];
    return this.#take();
  }
}

/** Where a record batch sits in a file (the Footer's Block). */
export interface FileBlockLike {
  offset: number;
  metaDataLength: number;
  bodyLength: number;
}

/** Bytes ready to append to an object. */
export interface EncodedBytes {
  chunks: Uint8Array[];
  bytes: number;
}

/** An encoded record batch message. */
export interface EncodedBatch extends EncodedBytes {
  rows: number;
  metaDataLength: number;
  bodyLength: number;
}

/** Encodes schema, batches and footers of IPC files with one schema. */
export class IpcFileEncoder {
  readonly schema: Schema;
  readonly #enc: Encoder;
  readonly #header: EncodedBytes;
  readonly #footerLen = new Map<number, number>();

  constructor(schema: Schema, compression: CompressionType | null = null) {
    this.schema = schema;
    this.#enc = new Encoder(compression);
    this.#header = this.#enc.header(schema);
  }

  /** Magic + padding + schema message. */
  get header(): EncodedBytes {
    return this.#header;
  }

  batch(batch: RecordBatch): EncodedBatch {
    return this.#enc.batch(batch);
  }

  /**
   * Exact size of the tail (end-of-stream marker, footer, length, magic) of a file with n
   * batches. Encoded once for one and for two batches (each encoding writes the whole schema
   * again); beyond that each Block adds 24 bytes: a flatbuffers vector of 24-byte structs
   * aligned to 8 needs the same padding whatever its length.
   */
  footerBytes(n: number): number {
    const one = this.#footerOf(1);
    return n <= 2 ? this.#footerOf(n) : one + (n - 1) * (this.#footerOf(2) - one);
  }

  #footerOf(n: number): number {
    let v = this.#footerLen.get(n);
    if (v === undefined) {
      const blocks = Array.from({ length: n }, () => ({ offset: 0, metaDataLength: 0, bodyLength: 0 }));
      v = this.#enc.footer(this.schema, blocks).bytes;
      this.#footerLen.set(n, v);
    }
    return v;
  }

  footer(blocks: FileBlockLike[]): EncodedBytes {
    return this.#enc.footer(this.schema, blocks);
  }
}
