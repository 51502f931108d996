// Segment numbers of one (table, node) when several streams write it (docs/naming.md).
// Streams draw numbers from one shared counter in the order they open objects (lazily, so
// never for an empty object): a completed run stores exactly the numbers it drew, 0..n-1.
// A resume seeds the counter with the numbers the kept streams stored; redone streams take
// the lowest free numbers first, filling the holes of the failed attempt.

/** The shared segment counter of one (table, node). */
export class SegmentNumbers {
  readonly #taken = new Set<number>();
  /** No number below this is free. */
  #low = 0;

  /** `kept`: numbers already stored by streams a resume keeps. */
  constructor(kept: Iterable<number> = []) {
    for (const n of kept) this.#taken.add(n);
  }

  /** The lowest free number, now taken. */
  take(): number {
    while (this.#taken.has(this.#low)) this.#low++;
    this.#taken.add(this.#low);
    return this.#low;
  }

  /**
   * One stream's view: its writer numbers its objects 0, 1, 2… (and may ask for one number
   * twice: when it opens the object and when it stores it); each first ask takes a shared number.
   */
  stream(): (local: number) => number {
    const mine = new Map<number, number>();
    return (local) => {
      let n = mine.get(local);
      if (n === undefined) {
        n = this.take();
        mine.set(local, n);
      }
      return n;
    };
  }
}

/** True when the numbers are not exactly 0..length-1 (a hole, or one used twice). */
export function hasGap(numbers: readonly number[]): boolean {
  const s = new Set(numbers);
  if (s.size !== numbers.length) return true;
  for (let i = 0; i < numbers.length; i++) if (!s.has(i)) return true;
  return false;
}
