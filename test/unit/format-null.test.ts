import { describe, expect, it } from 'vitest';
import { normalizeFormat, textValueCouldEqual } from '../../lib/format/options.js';
import { InvalidOptionError } from '../../lib/errors.js';

describe('text null strings that a value could equal', () => {
  it('refuses the empty string and any other form COPY TEXT can write for a value', () => {
    for (const n of ['', 'NULL', 'x', '\\\\', '\\t', 'a\\nb']) {
      expect(() => normalizeFormat({ kind: 'text', null: n }), JSON.stringify(n)).toThrow(InvalidOptionError);
    }
  });
  it('keeps \\N and other strings no value can be written as; csv and bare reading accept any', () => {
    for (const n of ['\\N', '\\NULL', 'a\\', '\\x']) expect(normalizeFormat({ kind: 'text', null: n }).null).toBe(n);
    expect(normalizeFormat({ kind: 'text' }).null).toBe('\\N');
    expect(normalizeFormat({ kind: 'csv', null: '' }).null).toBe('');
    expect(normalizeFormat({ kind: 'text', null: '' }, { allowLossyNull: true }).null).toBe('');
    expect(textValueCouldEqual('a|b', '|')).toBe(false);
    expect(textValueCouldEqual('a\\|b', '|')).toBe(true);
  });
});
