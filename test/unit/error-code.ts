import { expect } from 'vitest';
import { SegferryError } from '../../lib/errors.js';

/** The `code` of the SegferryError `f` throws (failing the test on any other throw), or undefined. Not a test file. */
export function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SegferryError);
    return (e as SegferryError).code;
  }
  return undefined;
}

/** {@link codeOf} for a function that returns a promise. */
export async function codeOfAsync(f: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(SegferryError);
    return (e as SegferryError).code;
  }
  return undefined;
}
