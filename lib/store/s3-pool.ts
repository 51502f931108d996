// The part buffers an S3 store's uploads fill and send from: one budget per store, not per
// upload, so that the memory of many uploads at once (`--streams auto` on a large table) stays flat.

/** What {@link PartPool} reports (tests and docs read it). */
export interface PartPoolState {
  /** Part buffers the pool may lend at once: `max(1, ⌊uploadMemory / partSize⌋)`. */
  readonly parts: number;
  /** Buffers lent out now (parts being filled or in flight). */
  readonly lent: number;
  /** Free buffers kept for reuse (allocated, not lent). */
  readonly free: number;
  /** Uploads waiting for a buffer. */
  readonly waiting: number;
}

/**
 * A counted set of `partSize` buffers shared by the uploads of one store: every part-sized
 * buffer an upload holds, the one it fills and its parts in flight (lib/store/s3-upload.ts), is
 * lent from here, so a store never holds more than `parts` of them, however many uploads are
 * open. A sent buffer comes back when its request settles (success or not), a filled one when
 * its upload ends. An upload waits for a buffer holding none, so no upload waits on another
 * forever: every lent buffer is being filled by a running upload or is in a request that
 * settles by itself (so a caller must not wait on one upload while keeping another of the same
 * store open: segferry's writers finish each object before opening the next); waiters are
 * served in arrival order. Buffers are allocated on first need
 * and kept for reuse until {@link clear}.
 */
export class PartPool {
  readonly parts: number;
  readonly partSize: number;
  #lent = 0;
  #cleared = false;
  readonly #free: Buffer[] = [];
  readonly #waiting: { resolve: (b: Buffer) => void; reject: (e: unknown) => void; signal: AbortSignal | undefined; onAbort: () => void }[] = [];

  /** `bytes`: the budget, at least one part. */
  constructor(bytes: number, partSize: number) {
    this.partSize = partSize;
    this.parts = Math.max(1, Math.floor(bytes / partSize));
  }

  get state(): PartPoolState {
    return { parts: this.parts, lent: this.#lent, free: this.#free.length, waiting: this.#waiting.length };
  }

  /**
   * A buffer of `partSize` bytes, once fewer than `parts` are lent; waits (first come, first
   * served) otherwise. Rejects with the signal's reason if it aborts while waiting.
   */
  acquire(signal?: AbortSignal): Promise<Buffer> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#lent < this.parts && this.#waiting.length === 0) return Promise.resolve(this.#take());
    return new Promise<Buffer>((resolve, reject) => {
      const w = {
        resolve, reject, signal,
        onAbort: () => {
          const i = this.#waiting.indexOf(w);
          if (i >= 0) this.#waiting.splice(i, 1);
          reject(signal!.reason);
        },
      };
      signal?.addEventListener('abort', w.onAbort, { once: true });
      this.#waiting.push(w);
    });
  }

  /** Give back a lent buffer. */
  release(b: Buffer): void {
    this.#lent--;
    if (b.length === this.partSize && !this.#cleared) this.#free.push(b);
    const w = this.#waiting.shift();
    if (w === undefined) return;
    w.signal?.removeEventListener('abort', w.onAbort);
    w.resolve(this.#take());
  }

  /** Let go of the free buffers (the store is closed); lent ones are dropped as they come back. */
  clear(): void {
    this.#cleared = true;
    this.#free.length = 0;
  }

  #take(): Buffer {
    this.#lent++;
    return this.#free.pop() ?? Buffer.allocUnsafe(this.partSize);
  }
}
