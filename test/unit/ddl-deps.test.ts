import { describe, expect, it } from 'vitest';
import { parseToc, schemasIfNotExists, selectToc } from '../../lib/ddl/deps.js';
import { checkDdlText } from '../../lib/ddl/statements.js';

// `pg_restore --list --verbose` of a schema-only archive (PostgreSQL 15), trimmed.
const TOC = `;
; Archive created at 2026-11-30 14:12:17 UTC
;     dbname: s1
;
; Selected TOC Entries:
;
3390; 0 0 ENCODING - ENCODING 
3391; 0 0 STDSTRINGS - STDSTRINGS 
3392; 0 0 SEARCHPATH - SEARCHPATH 
3393; 1262 16384 DATABASE - s1 segferry
8; 2615 16387 SCHEMA - app segferry
6; 2615 16385 SCHEMA - types segferry
3399; 0 0 COMMENT - SCHEMA types segferry
;\tdepends on: 6
224; 1255 16408 FUNCTION types is_code(text) segferry
;\tdepends on: 6
863; 1247 16410 DOMAIN types code segferry
;\tdepends on: 224 6
876; 1247 16445 TYPE types unused segferry
;\tdepends on: 6
220; 1259 16415 TABLE app customers segferry
;\tdepends on: 8
219; 1259 16414 SEQUENCE app shared_seq segferry
;\tdepends on: 8
3396; 0 0 SEQUENCE OWNED BY app shared_seq segferry
;\tdepends on: 219
222; 1259 16423 TABLE app orders segferry
;\tdepends on: 219 863 8
3394; 0 0 COMMENT app TABLE orders segferry
;\tdepends on: 222
3397; 0 0 COMMENT app TABLE customers segferry
;\tdepends on: 220
221; 1259 16422 SEQUENCE app orders_id_seq segferry
;\tdepends on: 8 222
3395; 0 0 SEQUENCE OWNED BY app orders_id_seq segferry
;\tdepends on: 221
3243; 2606 16433 CONSTRAINT app orders orders_pkey segferry
;\tdepends on: 222
3244; 2606 16434 FK CONSTRAINT app orders orders_cust_fkey segferry
;\tdepends on: 220 222 3240
`;

describe('named tables with what they depend on: the archive entries kept (lib/ddl/deps.ts)', () => {
  it('parses entries with their catalog address, description and dependencies', () => {
    const toc = parseToc(TOC);
    expect(toc).toHaveLength(20);
    expect(toc.find((e) => e.id === 863)).toEqual({ id: 863, catalog: '1247:16410', desc: 'DOMAIN types code segferry', deps: [224, 6], line: '863; 1247 16410 DOMAIN types code segferry' });
    expect(toc.find((e) => e.id === 3394)!.catalog).toBe('0:0');
    expect(toc.find((e) => e.id === 8)!.deps).toEqual([]);
  });

  it('keeps the header, the closure\'s entries and the comments and OWNED BY hanging off kept entries, in the archive\'s order; not the rest', () => {
    const keep = new Set(['2615:16387', '2615:16385', '1255:16408', '1247:16410', '1259:16423', '1259:16422', '1259:16414', '2606:16433']);
    const kept = selectToc(parseToc(TOC), { keep, ownerLeftOut: new Set() });
    expect(kept.map((e) => e.id)).toEqual([3390, 3391, 3392, 8, 6, 3399, 224, 863, 219, 3396, 222, 3394, 221, 3395, 3243]);
  });

  it('leaves out the OWNED BY of a sequence whose owner is not selected, and an entry any of whose dependencies is left out', () => {
    const keep = new Set(['2615:16387', '1259:16423', '1259:16414', '1259:16422']);
    const ids = selectToc(parseToc(TOC), { keep, ownerLeftOut: new Set(['1259:16414']) }).map((e) => e.id);
    expect(ids).toContain(219);
    expect(ids).not.toContain(3396); // OWNED BY app.shared_seq: its owner is not carried
    expect(ids).toContain(3395); // OWNED BY app.orders_id_seq
    expect(ids).not.toContain(3397); // the comment of a table not kept
    expect(ids).not.toContain(3393); // DATABASE is never restored
  });

  it('CREATE SCHEMA becomes CREATE SCHEMA IF NOT EXISTS (quoted names too), which the allowlist runs', () => {
    const sql = schemasIfNotExists('CREATE SCHEMA app;\nCREATE SCHEMA "Odd ""S"" ü";\nCOMMENT ON SCHEMA app IS \'CREATE SCHEMA x;\';\nCREATE SCHEMA IF NOT EXISTS public;\n');
    expect(sql).toBe('CREATE SCHEMA IF NOT EXISTS app;\nCREATE SCHEMA IF NOT EXISTS "Odd ""S"" ü";\nCOMMENT ON SCHEMA app IS \'CREATE SCHEMA x;\';\nCREATE SCHEMA IF NOT EXISTS public;\n');
    expect(checkDdlText(sql).map((s) => s.text.split(' ').slice(0, 5).join(' '))).toEqual([
      'CREATE SCHEMA IF NOT EXISTS', 'CREATE SCHEMA IF NOT EXISTS', 'COMMENT ON SCHEMA app IS', 'CREATE SCHEMA IF NOT EXISTS',
    ]);
  });
});
