// Object keys with --extension (lib/manifest/keys.ts): built, recognised and owned by every reader
// of keys; any other tail stays foreign.
import { describe, expect, it } from 'vitest';
import { isOwnedKey, ownedStems } from '../../lib/export/ownership.js';
import {
  compressionOfKey, isSegferryKey, isSegmentOf, partialKey, segmentExtension, segmentKey, segmentStemOf, unitObjectMatcher,
} from '../../lib/manifest/keys.js';
import type { Manifest } from '../../lib/manifest/types.js';
import { codeOf } from './error-code.js';

describe('segment keys with extensions', () => {
  it('the format extension, then the codec extension', () => {
    expect(segmentExtension('text')).toBe('.txt');
    expect(segmentExtension('csv', 'gzip')).toBe('.csv.gz');
    expect(segmentExtension('binary', 'zstd')).toBe('.bin.zst');
    expect(segmentExtension('arrow')).toBe('.arrow');
    expect(segmentExtension('parquet')).toBe('.parquet');
    expect(codeOf(() => segmentExtension('orc'))).toBe('ERR_INVALID_OPTION');
    expect(codeOf(() => segmentExtension('csv', 'lz4'))).toBe('ERR_INVALID_OPTION');
    expect(codeOf(() => segmentExtension('__proto__'))).toBe('ERR_INVALID_OPTION');
    expect(segmentKey('orders', 'dn1', 3, '.csv.gz')).toBe('orders_dn1_segment.3.csv.gz');
    expect(segmentKey('orders', 'dn1', 3)).toBe('orders_dn1_segment.3');
    expect(codeOf(() => segmentKey('orders', 'dn1', 3, '.exe'))).toBe('ERR_INVALID_OPTION');
    expect(codeOf(() => segmentKey('orders', 'dn1', 3, '/../x'))).toBe('ERR_INVALID_OPTION');
  });

  it('are segments of their stem (and their partial uploads too); other tails are not', () => {
    const good = ['t_dn1_segment.0.txt', 't_dn1_segment.12.csv.gz', 't_dn1_segment.1.bin.zst', 't_dn1_segment.2.arrow', 't_dn1_segment.3.parquet', 't_dn1_segment.4.gz', 't_dn1_segment.5.csv.zst'];
    for (const k of good) {
      expect(isSegferryKey(k), k).toBe(true);
      expect(isSegmentOf(k, 't_dn1_segment.'), k).toBe(true);
      expect(segmentStemOf(k), k).toBe('t_dn1_segment.');
      expect(isSegferryKey(partialKey(k)), k).toBe(true);
      expect(isSegmentOf(partialKey(k), 't_dn1_segment.'), k).toBe(true);
    }
    const bad = ['t_dn1_segment.0.exe', 't_dn1_segment.0.gz.csv', 't_dn1_segment.0.csv.gz.bak', 't_dn1_segment.0.csv.csv', 't_dn1_segment.0.CSV', 't_dn1_segment..csv', 't_dn1_segment.0.csv.gz.segferry-partial-XY'];
    for (const k of bad) {
      expect(isSegferryKey(k), k).toBe(false);
      expect(isSegmentOf(k, 't_dn1_segment.'), k).toBe(false);
      expect(segmentStemOf(k), k).toBeUndefined();
    }
    const m = unitObjectMatcher([{ objectName: 't', node: 'dn1' }]);
    expect([...good, ...bad, 't_dn10_segment.0.csv'].filter(m)).toEqual(good);
  });

  it('the codec named by a key', () => {
    expect(compressionOfKey('t_dn1_segment.0.csv.gz')).toBe('gzip');
    expect(compressionOfKey('t_dn1_segment.0.zst')).toBe('zstd');
    expect(compressionOfKey('t_dn1_segment.0.csv')).toBeUndefined();
    expect(compressionOfKey('t_dn1_segment.0')).toBeUndefined();
    expect(compressionOfKey('notes.gz')).toBeUndefined();
  });

  it('ownership: keys with extensions of a manifest stem are owned (cleanup, --overwrite, --resume)', () => {
    const manifest = { objects: [{ key: 't_dn1_segment.0.csv.gz' }], source: { nodes: [{ name: 'dn1' }, { name: 'dn2' }] }, tables: [{ objectName: 't', nodes: [{ node: 'dn1' }] }] } as unknown as Manifest;
    const stems = ownedStems({ manifest });
    expect(stems.has('t_dn1_segment.')).toBe(true);
    for (const k of ['t_dn1_segment.0.csv.gz', 't_dn1_segment.7.csv.gz', 't_dn2_segment.0.csv.gz', partialKey('t_dn1_segment.1.csv.gz')]) expect(isOwnedKey(k, stems), k).toBe(true);
    for (const k of ['t_dn1_segment.0.csv.gz.bak', 'u_dn1_segment.0.csv.gz', 'sub/t_dn1_segment.0.csv.gz', 't_dn1_segment.0.tar']) expect(isOwnedKey(k, stems), k).toBe(false);
  });
});
