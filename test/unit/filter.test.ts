import { describe, expect, it } from 'vitest';
import { checkFilterText } from '../../lib/pg/filter.js';
import { SegferryError } from '../../lib/errors.js';

function refused(f: string): string {
  try {
    checkFilterText(f);
  } catch (e) {
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_INVALID_OPTION');
    return (e as Error).message;
  }
  throw new Error(`accepted: ${f}`);
}

describe('checkFilterText (lexical WHERE check)', () => {
  it('refuses filters that would end the SELECT or start another statement', () => {
    expect(refused("id<3)) TO STDOUT; COMMIT; CREATE TABLE pwned(x int); --")).toMatch(/parenthesis|;/);
    expect(refused("id<3)) TO PROGRAM 'id > f' --")).toMatch(/parenthesis/);
    expect(refused('id < 3; DROP TABLE t')).toMatch(/;/);
    expect(refused('id < 3 -- comment')).toMatch(/--/);
    expect(refused('id < 3 /* c */')).toMatch(/\/\*/);
    expect(refused('(id < 3')).toMatch(/balance/);
    expect(refused("t = 'open")).toMatch(/not closed/);
    expect(refused('"unterminated = 1')).toMatch(/not closed/);
    expect(refused('t = $x$ open')).toMatch(/not closed/);
    // E'' takes backslash escapes: \' does not close it, so the ; after it is still inside.
    expect(refused("t = E'a\\'; DROP TABLE t")).toMatch(/not closed/);
    // A plain literal does not: 'a\' is closed, and what follows is outside.
    expect(refused("t = 'a\\') TO PROGRAM 'x'")).toMatch(/parenthesis/);
    expect(refused('   ')).toMatch(/empty/);
    expect(refused('a\0b')).toMatch(/NUL/);
  });

  it('accepts one expression with ; ) -- /* inside literals, identifiers and dollar quotes', () => {
    for (const f of [
      'id % 40 = 0',
      "t = 'a;b)' OR t = 'it''s -- not /* a comment'",
      "t = E'x\\'; y)'",
      '"odd;name)" IS NOT NULL AND "a""b" = 1',
      't = $$;)--$$ OR t = $tag$ ) ; $tag$',
      'f(g(1), (2)) > $1::int',
    ]) expect(() => checkFilterText(f), f).not.toThrow();
  });
});
