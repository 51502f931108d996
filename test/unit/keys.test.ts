import { describe, expect, it } from 'vitest';
import {
  CHECKPOINT_KEY, CLAIM_KEY, MANIFEST_KEY, PARTIAL_SUFFIX, isSegferryKey, objectNames, partialKey, segmentKey, segmentStem, unitObjectMatcher,
} from '../../lib/manifest/keys.js';
import { segmentKey as publicSegmentKey } from '../../lib/index.js';
import { InvalidOptionError } from '../../lib/errors.js';

describe('object keys', () => {
  it('segment keys are <objectName>_<node>_segment.<n>, also from the public API', () => {
    expect(segmentKey('orders', 'dn1', 0)).toBe('orders_dn1_segment.0');
    expect(segmentKey('sales.orders', 'dn-2', 17)).toBe('sales.orders_dn-2_segment.17');
    expect(segmentStem('orders', 'dn1')).toBe('orders_dn1_segment.');
    expect(publicSegmentKey('a%2Fb', 'coordinator', 3)).toBe('a%2Fb_coordinator_segment.3');
  });

  it('partial keys carry a random 12-hex-digit tag and count as segferry keys', () => {
    const a = partialKey('t_dn1_segment.0');
    const b = partialKey('t_dn1_segment.0');
    expect(a).toMatch(/^t_dn1_segment\.0\.segferry-partial-[0-9a-f]{12}$/);
    expect(a.startsWith('t_dn1_segment.0' + PARTIAL_SUFFIX)).toBe(true);
    expect(a).not.toBe(b);
    expect(isSegferryKey(a)).toBe(true);
  });

  it('isSegferryKey: manifest, checkpoint, claim, segments and partials only, at any depth', () => {
    for (const k of [MANIFEST_KEY, CHECKPOINT_KEY, CLAIM_KEY, 't_dn1_segment.0', 'x.y_n_segment.12', 't_dn2_segment.0.segferry-partial-0a1b', 'nested/t_dn1_segment.3']) {
      expect(isSegferryKey(k), k).toBe(true);
    }
    for (const k of ['notes.txt', 't_dn1_segment.', 't_dn1_segment.x', 't_dn1_segment.0.bak', 't_dn1_segment.0.segferry-partial-XYZ', 'manifest.json.old']) {
      expect(isSegferryKey(k), k).toBe(false);
    }
  });

  it('the unit matcher takes exactly the objects and partials of the given units', () => {
    const m = unitObjectMatcher([{ objectName: 'orders', node: 'dn1' }, { objectName: 'nation', node: 'dn2' }]);
    const keys = [
      'orders_dn1_segment.0', 'orders_dn1_segment.11', 'orders_dn1_segment.3.segferry-partial-00ff', 'nation_dn2_segment.0',
      'orders_dn2_segment.0', 'orders_dn10_segment.0', 'nation_dn1_segment.0', 'orders_dn1_segment.0.old', MANIFEST_KEY, CHECKPOINT_KEY,
    ];
    expect(keys.filter(m)).toEqual(['orders_dn1_segment.0', 'orders_dn1_segment.11', 'orders_dn1_segment.3.segferry-partial-00ff', 'nation_dn2_segment.0']);
    expect(['orders_dn1_segment.0'].filter(unitObjectMatcher([]))).toEqual([]);
  });

  it('object names: short name, schema.name on collision, percent-encoding, refusal of duplicates', () => {
    expect(objectNames([{ schema: 'public', name: 'orders' }, { schema: 'public', name: 'nation' }])).toEqual(['orders', 'nation']);
    expect(objectNames([{ schema: 'public', name: 'orders' }, { schema: 'sales', name: 'orders' }, { schema: 's', name: 'x' }]))
      .toEqual(['public.orders', 'sales.orders', 'x']);
    expect(objectNames([{ schema: 'p', name: 'a/b' }, { schema: 'p', name: '100%' }, { schema: 'p', name: 'c\\d\n\x7f' }, { schema: 'p', name: 'é f.g' }]))
      .toEqual(['a%2Fb', '100%25', 'c%5Cd%0A%7F', 'é f.g']);
    // a.c and b.c collide on c and become schema.name; x."a.c" then has the name a.c too.
    expect(() => objectNames([{ schema: 'a', name: 'c' }, { schema: 'b', name: 'c' }, { schema: 'x', name: 'a.c' }])).toThrow(InvalidOptionError);
  });
});
