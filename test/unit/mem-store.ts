// An in-memory ObjectStore for unit tests: objects appear on finish, an abort drops the bytes,
// and every call is logged so tests can assert the sequence.
import { Readable } from 'node:stream';
import type { ObjectInfo, ObjectStore, ObjectWriter } from '../../lib/store/types.js';

export class MemoryStore implements ObjectStore {
  readonly url = 'mem:///';
  readonly objects = new Map<string, Buffer>();
  readonly log: string[] = [];
  /** Keys whose upload is open. */
  readonly open = new Set<string>();
  /** When set, every write waits for this promise (a store that does not drain). */
  stall: Promise<void> | undefined;

  async check(): Promise<void> {}

  createWriter(key: string, opts: { signal?: AbortSignal } = {}): ObjectWriter {
    const parts: Buffer[] = [];
    this.open.add(key);
    this.log.push(`open ${key}`);
    return {
      write: async (chunk) => {
        if (this.stall) {
          const sig = opts.signal;
          await new Promise<void>((resolve, reject) => {
            const onAbort = () => reject(sig!.reason);
            if (sig?.aborted) return onAbort();
            sig?.addEventListener('abort', onAbort, { once: true });
            void this.stall!.then(() => { sig?.removeEventListener('abort', onAbort); resolve(); });
          });
        }
        parts.push(Buffer.from(chunk));
      },
      finish: async () => {
        this.open.delete(key);
        this.objects.set(key, Buffer.concat(parts));
        this.log.push(`finish ${key}`);
      },
      abort: async () => {
        this.open.delete(key);
        this.log.push(`abort ${key}`);
      },
    };
  }

  async read(key: string): Promise<Readable> {
    return Readable.from([this.objects.get(key)!]);
  }

  async putBytes(key: string, body: Buffer | string): Promise<void> {
    this.objects.set(key, Buffer.from(body));
  }

  async getBytes(key: string): Promise<Buffer | undefined> {
    return this.objects.get(key);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const b = this.objects.get(key);
    return b ? { key, size: b.length } : undefined;
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    for (const k of [...this.objects.keys()].sort()) if (k.startsWith(prefix)) yield { key: k, size: this.objects.get(k)!.length };
  }

  async delete(keys: string[]): Promise<void> {
    for (const k of keys) this.objects.delete(k);
  }

  close(): void {}
}

/** A RowChunk of whole rows. */
export function chunk(...rows: string[]): { data: Buffer; rowEnds: Uint32Array } {
  const data = Buffer.from(rows.join(''));
  const ends = new Uint32Array(rows.length);
  let at = 0;
  rows.forEach((r, i) => { at += Buffer.byteLength(r); ends[i] = at; });
  return { data, rowEnds: ends };
}
