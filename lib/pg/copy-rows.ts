/*
 * Row ends in stored COPY data (an object read back from storage), where no CopyData message
 * framing exists any more: TEXT escapes newlines inside values, so a raw newline ends a row;
 * CSV needs a quote-aware scan; BINARY is walked by its field lengths (PostgreSQL "COPY",
 * "File Formats").
 */
import { CopyProtocolError } from '../errors.js';
import { COPY_SIGNATURE } from './copy-binary.js';

/** How the stored rows are written. */
export interface CopyRowFormat {
  kind: 'text' | 'csv' | 'binary';
  /** csv: quote character (default `"`). */
  quote?: string;
  /** csv: escape character (default: the quote). */
  escape?: string;
  /** csv: the first line is a header, not a row (default false). */
  header?: boolean;
}

/** One row of a stored COPY stream. */
export interface StoredRow {
  /** The row's bytes as stored (text/csv: the line with its newline; binary: the tuple). */
  data: Buffer;
  /** Byte offset of the row's start in the stream. */
  offset: number;
}

const NL = 0x0a;

/**
 * Cuts a stream of COPY data into rows. Feed every chunk in order with {@link push}; it returns
 * the rows that end in that chunk. A row that spans chunks is held until it ends (memory: the
 * largest row). A row within one chunk is a view on it, not a copy.
 */
export class CopyRowSplitter {
  readonly #kind: CopyRowFormat['kind'];
  readonly #quote: number;
  readonly #escape: number;
  /** csv: a header line is still to be skipped. */
  #skipLine: boolean;
  #inQuote = false;
  /** csv: the previous byte was an escape inside quotes (its next byte is literal). */
  #escaped = false;
  /** Stream offset of the next chunk's first byte. */
  #offset = 0;
  /** Pieces of the row under way (all of them, from its start). */
  #carry: Buffer[] = [];
  #carryLen = 0;
  /** Stream offset where the row under way starts (or where the next one will). */
  #rowStart = 0;
  // binary: what the walker waits for, and how many bytes of it are still missing.
  #bState: 'sig' | 'count' | 'len' | 'field' | 'done' = 'sig';
  #bNeed = 19;
  #bFields = 0;
  #bHead: number[] = [];
  /** Rows found so far. */
  rows = 0;
  /** Bytes seen so far. */
  bytes = 0;

  constructor(f: CopyRowFormat) {
    this.#kind = f.kind;
    this.#quote = (f.quote ?? '"').charCodeAt(0);
    this.#escape = (f.escape ?? f.quote ?? '"').charCodeAt(0);
    this.#skipLine = f.kind === 'csv' && f.header === true;
  }

  /** The rows that end in `chunk` (in order). */
  push(chunk: Buffer): StoredRow[] {
    const out: StoredRow[] = [];
    const base = this.#offset;
    this.#offset += chunk.length;
    this.bytes += chunk.length;
    if (this.#kind === 'binary') this.#binary(chunk, base, out);
    else this.#lines(chunk, base, out);
    // Keep what belongs to the row under way.
    const from = this.#rowStart - base;
    if (from < chunk.length) {
      const piece = from > 0 ? chunk.subarray(from) : chunk;
      this.#carry.push(piece);
      this.#carryLen += piece.length;
    }
    return out;
  }

  /** Call at the end of the stream: throws when it ends inside a row (or, binary, before its trailer). */
  end(): void {
    if (this.#kind === 'binary') {
      if (this.#bState !== 'done') throw new CopyProtocolError(`COPY BINARY data ends inside ${this.#bState === 'count' ? 'the stream, without its trailer' : 'a tuple'}`);
      return;
    }
    if (this.#carryLen > 0) throw new CopyProtocolError(`COPY ${this.#kind.toUpperCase()} data ends inside a row (no final newline)`);
  }

  /** Emit the row [rowStart, end) (stream offsets); `chunk` starts at `base`. */
  #emit(chunk: Buffer, base: number, end: number, out: StoredRow[], isRow = true): void {
    const start = this.#rowStart;
    if (isRow) {
      let data: Buffer;
      if (this.#carryLen === 0) data = chunk.subarray(start - base, end - base);
      else data = Buffer.concat([...this.#carry, chunk.subarray(0, end - base)], this.#carryLen + end - base);
      out.push({ data, offset: start });
      this.rows++;
    }
    this.#carry = [];
    this.#carryLen = 0;
    this.#rowStart = end;
  }

  #lines(c: Buffer, base: number, out: StoredRow[]): void {
    if (this.#kind === 'text') {
      for (let i = c.indexOf(NL); i >= 0; i = c.indexOf(NL, i + 1)) this.#emit(c, base, base + i + 1, out);
      return;
    }
    const q = this.#quote;
    const esc = this.#escape;
    const sameEsc = q === esc;
    let inQ = this.#inQuote;
    let escaped = this.#escaped;
    for (let i = 0; i < c.length; i++) {
      const b = c[i]!;
      if (inQ) {
        if (escaped) { escaped = false; continue; }
        if (b === q) inQ = false;
        // With a distinct escape, it makes the quote (or itself) after it literal. A doubled
        // quote needs no rule: it closes and opens again.
        else if (!sameEsc && b === esc && (i + 1 >= c.length || c[i + 1] === q || c[i + 1] === esc)) escaped = true;
      } else if (b === q) {
        inQ = true;
      } else if (b === NL) {
        const skip = this.#skipLine;
        this.#skipLine = false;
        this.#emit(c, base, base + i + 1, out, !skip);
      }
    }
    this.#inQuote = inQ;
    this.#escaped = escaped;
  }

  /** Walk COPY BINARY: header, then tuples (int16 field count, per field int32 length + bytes), then the trailer (-1). */
  #binary(c: Buffer, base: number, out: StoredRow[]): void {
    let i = 0;
    while (i < c.length) {
      if (this.#bState === 'done') throw new CopyProtocolError('COPY BINARY data continues after its trailer');
      if (this.#bState === 'field') {
        const n = Math.min(this.#bNeed, c.length - i);
        i += n;
        this.#bNeed -= n;
        if (this.#bNeed === 0) this.#nextField(c, base, base + i, out);
        continue;
      }
      // A fixed-size header piece, possibly split across chunks.
      while (this.#bHead.length < this.#bNeed && i < c.length) this.#bHead.push(c[i++]!);
      if (this.#bHead.length < this.#bNeed) return;
      const h = Buffer.from(this.#bHead);
      this.#bHead = [];
      switch (this.#bState) {
        case 'sig':
          if (h.compare(COPY_SIGNATURE, 0, 11, 0, 11) !== 0) throw new CopyProtocolError('COPY BINARY data does not start with the PGCOPY signature');
          this.#bNeed = h.readUInt32BE(15);
          // The extension area is skipped like a field; -1 marks it.
          if (this.#bNeed > 0) { this.#bState = 'field'; this.#bFields = -1; } else this.#nextField(c, base, base + i, out, true);
          break;
        case 'count': {
          const n = h.readInt16BE(0);
          if (n === -1) {
            this.#bState = 'done';
            this.#emit(c, base, base + i, out, false);
            break;
          }
          if (n < 0) throw new CopyProtocolError(`COPY BINARY tuple with ${n} fields`);
          this.#bFields = n;
          if (n === 0) this.#endTuple(c, base, base + i, out);
          else { this.#bState = 'len'; this.#bNeed = 4; }
          break;
        }
        case 'len': {
          const len = h.readInt32BE(0);
          if (len < -1) throw new CopyProtocolError(`COPY BINARY field of length ${len}`);
          if (len <= 0) this.#nextField(c, base, base + i, out);
          else { this.#bState = 'field'; this.#bNeed = len; }
          break;
        }
        default:
          break;
      }
    }
  }

  /** One field done (or the header extension skipped). */
  #nextField(c: Buffer, base: number, at: number, out: StoredRow[], header = false): void {
    if (header || this.#bFields === -1) {
      // The header (and its extension area) ends here: tuples start.
      this.#bState = 'count';
      this.#bNeed = 2;
      this.#emit(c, base, at, out, false);
      return;
    }
    if (--this.#bFields === 0) this.#endTuple(c, base, at, out);
    else { this.#bState = 'len'; this.#bNeed = 4; }
  }

  #endTuple(c: Buffer, base: number, at: number, out: StoredRow[]): void {
    this.#emit(c, base, at, out);
    this.#bState = 'count';
    this.#bNeed = 2;
  }
}
