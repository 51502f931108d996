import { describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isOwnedKey, ownedStems, planStems, unitStem } from '../../lib/export/ownership.js';
import { acquireClaim, CLAIM_KEY, commitExclusive, readClaim } from '../../lib/store/claim.js';
import { DirectoryStore } from '../../lib/store/dir.js';
import { PrefixClaimedError } from '../../lib/errors.js';
import type { Manifest } from '../../lib/manifest/types.js';
import type { Checkpoint } from '../../lib/export/checkpoint.js';
import type { ExportPlan } from '../../lib/export/plan.js';

describe('ownership: what is provably this export\'s', () => {
  const manifest = {
    source: { nodes: [{ name: 'dn1' }, { name: 'dn2' }] },
    tables: [{ objectName: 'orders', nodes: [{ node: 'dn1' }] }],
    objects: [{ key: 'orders_dn1_segment.0' }],
  } as unknown as Manifest;
  const checkpoint = { stems: ['lineitem_dn3_segment.'], units: [{ objects: [{ key: 'part_dn1_segment.4' }] }] } as unknown as Checkpoint;
  const stems = ownedStems({ manifest, checkpoint });

  it('names the manifest\'s units on every source node, the checkpoint\'s recorded stems and its units\' objects', () => {
    expect([...stems].sort()).toEqual(['lineitem_dn3_segment.', 'orders_dn1_segment.', 'orders_dn2_segment.', 'part_dn1_segment.']);
    expect(unitStem('orders', 'dn2')).toBe('orders_dn2_segment.');
  });

  it('owns segments and partial uploads of those stems directly under the prefix, and the fixed keys', () => {
    for (const k of ['orders_dn2_segment.17', 'orders_dn1_segment.0.segferry-partial-0a9f', 'lineitem_dn3_segment.0', 'manifest.json', 'segferry-checkpoint.json']) {
      expect(isOwnedKey(k, stems), k).toBe(true);
    }
  });

  it('never owns nested keys, other stems, odd tails or the claim', () => {
    for (const k of ['2026-11-29/orders_dn1_segment.0', 'daily/manifest.json', 'dws_orders_dn7_segment.0', 'orders_dn1_segment.x', 'orders_dn1_segment.1.bak',
      'orders_dn1_segment.', 'xorders_dn1_segment.0', 'segferry-claim.json', 'notes.txt']) {
      expect(isOwnedKey(k, stems), k).toBe(false);
    }
  });

  it('a plan names every table on every node (a replicated table may be read from any replica)', () => {
    const plan = { tables: [{ objectName: 'a' }, { objectName: 'b' }], nodes: [{ name: 'dn1' }, { name: 'dn2' }] } as unknown as ExportPlan;
    expect(planStems(plan)).toEqual(['a_dn1_segment.', 'a_dn2_segment.', 'b_dn1_segment.', 'b_dn2_segment.']);
  });
});

describe('prefix claim on a directory (O_EXCL semantics through link(2))', () => {
  it('exactly one of many concurrent claims wins; the losers name the winner and leave its claim alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sf-claim-'));
    try {
      const store = new DirectoryStore(dir);
      const settled = await Promise.allSettled(Array.from({ length: 8 }, () => acquireClaim(store)));
      const won = settled.filter((s) => s.status === 'fulfilled');
      expect(won.length).toBe(1);
      const winner = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireClaim>>>).value;
      for (const s of settled.filter((x): x is PromiseRejectedResult => x.status === 'rejected')) {
        expect(s.reason).toBeInstanceOf(PrefixClaimedError);
        expect((s.reason as PrefixClaimedError).code).toBe('ERR_PREFIX_CLAIMED');
        expect((s.reason as Error).message).toContain(winner.runId);
      }
      expect((await readClaim(store))?.runId).toBe(winner.runId);
      // No temporaries left behind by the losers.
      expect(await readdir(dir)).toEqual([CLAIM_KEY]);
      await commitExclusive(winner, 'manifest.json', '{"a":1}');
      await expect(commitExclusive(winner, 'manifest.json', '{"a":2}')).rejects.toBeInstanceOf(PrefixClaimedError);
      await winner.release();
      expect((await readdir(dir)).sort()).toEqual(['manifest.json']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takeOver replaces only the named run\'s claim; release never deletes someone else\'s', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sf-claim-'));
    try {
      const store = new DirectoryStore(dir);
      const dead = await acquireClaim(store);
      await expect(acquireClaim(store, { takeOver: 'some-other-run' })).rejects.toBeInstanceOf(PrefixClaimedError);
      const next = await acquireClaim(store, { takeOver: dead.runId });
      await dead.release();
      expect((await readClaim(store))?.runId).toBe(next.runId);
      await expect(dead.confirm()).rejects.toBeInstanceOf(PrefixClaimedError);
      await next.confirm();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a store that cannot promise conditional writes gets a best-effort claim and a warning', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sf-claim-'));
    try {
      const base = new DirectoryStore(dir);
      // The same directory, seen as a store without conditional writes (no createExclusive).
      const weak = { url: base.url, conditionalWrites: 'unknown' as const, getBytes: (k: string) => base.getBytes(k), putBytes: (k: string, b: Buffer | string) => base.putBytes(k, b), head: (k: string) => base.head(k), delete: (k: string[]) => base.delete(k) };
      const warnings: string[] = [];
      const c = await acquireClaim(weak as never, { settleMs: 10, onBestEffort: (m) => warnings.push(m) });
      expect(warnings.length).toBe(1);
      await expect(acquireClaim(weak as never, { settleMs: 10 })).rejects.toBeInstanceOf(PrefixClaimedError);
      // Another run overwriting the claim (what an ignored If-None-Match allows) is caught at confirm.
      await writeFile(join(dir, CLAIM_KEY), JSON.stringify({ kind: 'segferry-claim', version: 1, runId: 'intruder', operation: 'export', host: 'h', pid: 1, createdAt: 'now' }));
      await expect(c.confirm()).rejects.toThrow(/intruder/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
