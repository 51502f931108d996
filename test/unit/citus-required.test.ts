/**
 * SEGFERRY_REQUIRE_CITUS=1 turns the Citus suite's skip into a failure (test/helpers/citus.ts).
 * No server: citusMissing() only looks for the extension's files.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { citusMissing } from '../helpers/citus.js';

const saved = process.env.SEGFERRY_REQUIRE_CITUS;
afterEach(() => {
  if (saved === undefined) delete process.env.SEGFERRY_REQUIRE_CITUS;
  else process.env.SEGFERRY_REQUIRE_CITUS = saved;
});

describe('SEGFERRY_REQUIRE_CITUS', () => {
  it('unset: a missing Citus is a reason to skip; =1: the same check throws, naming the switch and the reason', () => {
    delete process.env.SEGFERRY_REQUIRE_CITUS;
    const why = citusMissing();
    process.env.SEGFERRY_REQUIRE_CITUS = '1';
    if (why === undefined) {
      // Citus is installed here: nothing to skip, nothing to fail.
      expect(citusMissing()).toBeUndefined();
    } else {
      expect(() => citusMissing()).toThrow(`SEGFERRY_REQUIRE_CITUS=1, but the Citus tests cannot run: ${why}`);
    }
  });

  it('any other value keeps the skip', () => {
    delete process.env.SEGFERRY_REQUIRE_CITUS;
    const why = citusMissing();
    process.env.SEGFERRY_REQUIRE_CITUS = 'yes';
    expect(citusMissing()).toBe(why);
  });
});
