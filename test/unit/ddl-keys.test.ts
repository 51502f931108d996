import { describe, expect, it } from 'vitest';
import { DDL_POST_KEY, DDL_PRE_KEY, isControlKey, isSegferryKey, segmentStemOf, unitObjectMatcher } from '../../lib/manifest/keys.js';
import { isOwnedKey } from '../../lib/export/ownership.js';
import { checkManifest } from '../../lib/manifest/io.js';

describe('DDL keys (issue 14)', () => {
  it('are fixed control keys, owned directly under the prefix, never a segment', () => {
    for (const k of [DDL_PRE_KEY, DDL_POST_KEY]) {
      expect(isControlKey(k)).toBe(true);
      expect(isSegferryKey(k)).toBe(true);
      expect(segmentStemOf(k)).toBeUndefined();
      expect(isOwnedKey(k, new Set())).toBe(true);
      expect(isOwnedKey(`nested/${k}`, new Set())).toBe(false);
      // A table named like the key still writes `<name>_<node>_segment.<n>`.
      expect(unitObjectMatcher([{ objectName: 'segferry-ddl-pre-data.sql', node: 'dn1' }])(k)).toBe(false);
    }
  });

  it('a manifest cannot point the DDL at another object or carry a non-numeric sequence value', () => {
    const base = {
      kind: 'segferry-manifest', version: 1, id: 'x', format: { kind: 'text' }, sessionSettings: {}, tables: [], objects: [],
    };
    const ddl = (over: Record<string, unknown>) => ({
      pre: { key: DDL_PRE_KEY, bytes: 1, sha256: 'a'.repeat(64) }, post: { key: DDL_POST_KEY, bytes: 1, sha256: 'b'.repeat(64) },
      snapshot: 'shared', scope: 'database', sequences: [{ schema: 's', name: 'q', lastValue: '5', isCalled: true }], ...over,
    });
    expect(() => checkManifest({ ...base, ddl: ddl({}) })).not.toThrow();
    expect(() => checkManifest({ ...base, ddl: ddl({ pre: { key: '../etc/passwd', bytes: 1, sha256: 'a'.repeat(64) } }) })).toThrow(/ddl.pre.key must be segferry-ddl-pre-data.sql/);
    expect(() => checkManifest({ ...base, ddl: ddl({ post: { key: DDL_POST_KEY, bytes: 1, sha256: 'zz' } }) })).toThrow(/sha256/);
    expect(() => checkManifest({ ...base, ddl: ddl({ sequences: [{ schema: 's', name: 'q', lastValue: '1); DROP TABLE x; --', isCalled: true }] }) })).toThrow(/decimal bigint/);
    expect(() => checkManifest({ ...base, ddl: ddl({ scope: 'everything' }) })).toThrow(/scope/);
  });
});
