/**
 * One AbortSignal per worker, all aborted together. Workers of a pool that shared one signal
 * each hung their own abort listeners on it (an exporter's, its store writer's, a pipeline's):
 * eleven or more at once and Node prints MaxListenersExceededWarning, and every abort walks them
 * all. Here each worker's signal carries only that worker's listeners; {@link abort} fans out by
 * a loop, adding no listener to anything.
 */
export class WorkerSignals {
  readonly #controllers: AbortController[] = [];
  readonly #onAbort: (() => void) | undefined;
  #aborted = false;
  #reason: unknown;

  /** `onAbort` (default none) runs once, after every worker's signal is aborted. */
  constructor(onAbort?: () => void) {
    this.#onAbort = onAbort;
  }

  /** True once {@link abort} ran. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** The reason {@link abort} got. */
  get reason(): unknown {
    return this.#reason;
  }

  /** A new worker's signal (already aborted, with the same reason, after {@link abort}). */
  signal(): AbortSignal {
    const ac = new AbortController();
    if (this.#aborted) ac.abort(this.#reason);
    else this.#controllers.push(ac);
    return ac.signal;
  }

  /** Abort every worker's signal with `reason` (only the first call counts). */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    for (const ac of this.#controllers.splice(0)) ac.abort(reason);
    this.#onAbort?.();
  }
}
