/**
 * fromDatabaseError keeps segferry errors, maps real database and network failures to their
 * codes (SQLSTATE kept), and turns JavaScript's own errors into ERR_INTERNAL with the cause;
 * the new classes cross a worker thread boundary unchanged.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as errors from '../../lib/errors.js';
import {
  CopyProtocolError, FormatError, InternalError, SegferryError, ValueConversionError, fromDatabaseError, reviveError, serializeError,
} from '../../lib/errors.js';

const ctx = { node: 'dn1', table: 'public.t', endpoint: '127.0.0.1:5432/db', action: 'COPY' };

function pgError(message: string, code: string, detail?: string): Error {
  return Object.assign(new Error(message), { code, ...(detail ? { detail } : {}) });
}

describe('fromDatabaseError', () => {
  it('returns a segferry error as it is', () => {
    const e = new CopyProtocolError('bad framing', { node: 'dn2' });
    expect(fromDatabaseError(e, ctx)).toBe(e);
  });

  it('maps SQLSTATEs and keeps them', () => {
    const cases: [string, string][] = [
      ['42P01', 'ERR_TABLE_NOT_FOUND'], ['42703', 'ERR_COLUMN_NOT_FOUND'], ['28P01', 'ERR_AUTH'], ['3D000', 'ERR_CONNECT'],
      ['57P01', 'ERR_CONNECT'], ['08006', 'ERR_CONNECT'], ['23505', 'ERR_DATABASE'], ['22P02', 'ERR_DATABASE'],
    ];
    for (const [state, code] of cases) {
      const cause = pgError(`server says ${state}`, state, 'some detail');
      const e = fromDatabaseError(cause, ctx);
      expect([state, e.code]).toEqual([state, code]);
      expect(e.sqlState).toBe(state);
      expect(e.node).toBe('dn1');
      expect(e.cause).toBe(cause);
    }
  });

  it('maps socket failures and pg connection messages to ERR_CONNECT', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' });
    expect(fromDatabaseError(refused, ctx).code).toBe('ERR_CONNECT');
    expect(fromDatabaseError(new Error('Connection terminated unexpectedly'), ctx).code).toBe('ERR_CONNECT');
    const tls = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(fromDatabaseError(tls, { ...ctx, action: 'connect' }).code).toBe('ERR_CONNECT');
  });

  it('keeps a plain Error from the driver (no code) as ERR_DATABASE', () => {
    const e = fromDatabaseError(new Error('Received unexpected commandComplete message from backend.'), ctx);
    expect(e.code).toBe('ERR_DATABASE');
    expect(e.sqlState).toBeUndefined();
  });

  it('turns JavaScript errors and non-errors into ERR_INTERNAL with the cause', () => {
    for (const cause of [new TypeError('x is not a function'), new RangeError('offset out of range'), new SyntaxError('bad'), 'a string', undefined, 42]) {
      const e = fromDatabaseError(cause, ctx);
      expect(e).toBeInstanceOf(InternalError);
      expect(e.code).toBe('ERR_INTERNAL');
      expect(e.cause).toBe(cause);
      expect(e.sqlState).toBeUndefined();
      expect(e.node).toBe('dn1');
      expect(e.table).toBe('public.t');
    }
    // Even during connect: a TypeError is a bug, not an unreachable server.
    expect(fromDatabaseError(new TypeError('boom'), { action: 'connect' }).code).toBe('ERR_INTERNAL');
  });

  it('a Node TypeError with an ERR_* code is internal (such codes are not SQLSTATEs)', () => {
    const e = Object.assign(new TypeError('The "chunk" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' });
    expect(fromDatabaseError(e, ctx).code).toBe('ERR_INTERNAL');
  });
});

describe('new error classes across threads', () => {
  it('serializeError / reviveError keep class, code and fields', () => {
    for (const e of [
      new CopyProtocolError('framing', { node: 'dn1' }),
      new ValueConversionError('value', { table: 'public.t' }),
      new FormatError('arrow', { key: 'k' }),
      new InternalError('bug', { cause: new TypeError('inner') }),
    ]) {
      const r = reviveError(structuredClone(serializeError(e)));
      expect(r).toBeInstanceOf(e.constructor);
      expect(r).toBeInstanceOf(SegferryError);
      expect(r.toJSON()).toEqual(e.toJSON());
    }
  });
});

describe('error codes in the docs', () => {
  it('docs/cli.md lists every ErrorCode once, with the class that carries it', () => {
    const src = readFileSync(new URL('../../lib/errors.ts', import.meta.url), 'utf8');
    const union = /export type ErrorCode =([^;]*);/.exec(src)![1]!;
    const codes = [...union.matchAll(/'(ERR_[A-Z_]+)'/g)].map((m) => m[1]!).sort();
    expect(codes.length).toBeGreaterThan(20);
    const doc = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \| `(\w+)` \|/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(rows.map(([c]) => c).sort()).toEqual(codes);
    for (const [code, cls] of rows) {
      const C = (errors as unknown as Record<string, new (m: string, a?: unknown, b?: unknown) => SegferryError>)[cls];
      expect(C, cls).toBeTypeOf('function');
      const e = cls === 'RowTooLargeError' ? new C('x', 1) : new C('x');
      expect([cls, e.code]).toEqual([cls, code]);
    }
  });
});
