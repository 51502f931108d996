import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readKeyFile, unwrapDataKey } from '../../lib/crypto/envelope.js';
import { planDigest } from '../../lib/export/checkpoint.js';
import { encryptPlan, parsePlanFile, planFile, runPlanPart } from '../../lib/export/parts.js';
import type { ExportPlan } from '../../lib/export/plan.js';
import { startExport } from '../../lib/export/resume.js';
import { codeOf } from './error-code.js';
import { MemoryStore } from './mem-store.js';

// A plan run in parts carries one wrapped data key (docs/encryption.md#a-plan-run-in-parts).
const plan: ExportPlan = {
  version: 1, topology: 'static', nodes: [{ name: 'dn1', endpoint: { host: '127.0.0.1', port: 1, database: 'db', user: 'u' } }], tables: [],
  format: { kind: 'text' }, segmentSize: 1 << 20, filter: null, sessionSettings: {}, concurrency: 1, checksums: true,
};
const dir = mkdtempSync(join(tmpdir(), 'sf-plan-encrypt-'));
const k1 = join(dir, 'k1');
const k2 = join(dir, 'k2');
writeFileSync(k1, randomBytes(32));
writeFileSync(k2, randomBytes(32));

describe('encryptPlan', () => {
  it('adds the wrapped data key (never the plain one) and changes the plan digest', async () => {
    const p = await encryptPlan(plan, { keyFile: k1 });
    const enc = p.clientEncryption!;
    expect(enc).toMatchObject({ algorithm: 'segferry-aes-256-gcm-chunked-v1', keySource: 'key-file', chunkSize: 65536 });
    const dataKey = unwrapDataKey(enc, readKeyFile(k1));
    const text = JSON.stringify(planFile(p, '/x'));
    expect(text).not.toContain(dataKey.toString('base64'));
    expect(text).not.toContain(dataKey.toString('hex'));
    expect(planDigest(p)).not.toBe(planDigest(plan));
    expect(planDigest(await encryptPlan(plan, { keyFile: k1 }))).not.toBe(planDigest(p)); // another data key, another plan
    // The file parses back with its entry.
    expect(parsePlanFile(text, 'plan.json').plan.clientEncryption).toEqual(enc);
  });

  it('a plan file with a malformed entry is refused before use', async () => {
    const p = await encryptPlan(plan, { keyFile: k1 });
    for (const bad of [{ ...p.clientEncryption, keyId: "x'; DROP" }, { ...p.clientEncryption, chunkSize: 1 }, { ...p.clientEncryption, algorithm: 'rot13' }, 'key']) {
      const text = JSON.stringify(planFile({ ...p, clientEncryption: bad as never }, '/x'));
      expect(codeOf(() => parsePlanFile(text, 'plan.json'))).toBe('ERR_MANIFEST_INVALID');
    }
  });

  it('a part with a wrong key, no key, or a key for a plain plan fails before the store is touched', async () => {
    const p = await encryptPlan(plan, { keyFile: k1 });
    for (const [pl, encrypt, code] of [[p, { keyFile: k2 }, 'ERR_ENCRYPTION_KEY'], [p, undefined, 'ERR_ENCRYPTION_KEY'], [plan, { keyFile: k1 }, 'ERR_INVALID_OPTION']] as const) {
      const store = new MemoryStore();
      const err = await runPlanPart({ plan: pl, to: store, part: { k: 1, n: 1 }, ...(encrypt ? { encrypt } : {}) }).then(() => undefined, (e: unknown) => e);
      expect((err as { code?: string }).code).toBe(code);
      expect(store.log).toEqual([]);
      expect(store.objects.size).toBe(0);
    }
  });

  it('a single run given an encrypted plan uses its data key, and needs the key', async () => {
    const p = await encryptPlan(plan, { keyFile: k1 });
    const { keyFileSource } = await import('../../lib/crypto/keys.js');
    const s = await startExport(new MemoryStore(), p, false, undefined, [], keyFileSource(k1));
    expect(s.dataKey!.manifest).toEqual(p.clientEncryption);
    expect(s.dataKey!.dataKey.equals(unwrapDataKey(p.clientEncryption!, readKeyFile(k1)))).toBe(true);
    const err = await startExport(new MemoryStore(), p, false).then(() => undefined, (e: unknown) => e);
    expect((err as { code?: string }).code).toBe('ERR_ENCRYPTION_KEY');
  });
});
