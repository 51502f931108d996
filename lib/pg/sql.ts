/** SQL text helpers. Every identifier segferry puts into SQL goes through quoteIdent. */
import { InvalidOptionError } from '../errors.js';

/** Quote an identifier for PostgreSQL: wrap in double quotes, double any inside. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new InvalidOptionError('identifier contains a NUL byte');
  return '"' + name.replace(/"/g, '""') + '"';
}

/** Quote a string literal (standard_conforming_strings on, the default since 9.1). */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new InvalidOptionError('literal contains a NUL byte');
  return "'" + value.replace(/'/g, "''") + "'";
}

/** A schema-qualified table name. */
export interface QualifiedName {
  schema: string;
  name: string;
}

/** `"schema"."name"` */
export function quoteQualified(q: QualifiedName): string {
  return `${quoteIdent(q.schema)}.${quoteIdent(q.name)}`;
}

/** Human form `schema.name`, used in messages and manifests (not for SQL). */
export function displayName(q: QualifiedName): string {
  return `${q.schema}.${q.name}`;
}

/**
 * Parse a user-given table name: `name`, `schema.name`, or with double-quoted parts
 * (`"My Schema"."odd.name"`). Unquoted parts are folded to lower case as PostgreSQL does.
 * Without a schema, `defaultSchema` (public) is used.
 */
export function parseTableName(input: string, defaultSchema = 'public'): QualifiedName {
  const parts: string[] = [];
  let i = 0;
  const s = input.trim();
  while (i < s.length) {
    if (s[i] === '"') {
      let j = i + 1;
      let part = '';
      for (;;) {
        if (j >= s.length) throw new InvalidOptionError(`unterminated quoted identifier in table name ${input}`);
        if (s[j] === '"') {
          if (s[j + 1] === '"') { part += '"'; j += 2; continue; }
          break;
        }
        part += s[j];
        j++;
      }
      parts.push(part);
      i = j + 1;
    } else {
      let j = i;
      while (j < s.length && s[j] !== '.') j++;
      parts.push(s.slice(i, j).trim().toLowerCase());
      i = j;
    }
    if (i < s.length) {
      if (s[i] !== '.') throw new InvalidOptionError(`unexpected character in table name ${input}`);
      i++;
      if (i >= s.length) throw new InvalidOptionError(`table name ends with a dot: ${input}`);
    }
  }
  if (parts.length === 1 && parts[0]) return { schema: defaultSchema, name: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { schema: parts[0], name: parts[1] };
  throw new InvalidOptionError(`cannot parse table name ${JSON.stringify(input)}: use name or schema.name`);
}

/**
 * The condition of a heap page range: `ctid >= '(from,0)'::tid AND ctid < '(to,0)'::tid`, or
 * only the lower bound when `to` is null (open-ended, so rows in pages added later are read).
 * PostgreSQL 14 and later run it as a TID range scan that reads only those pages.
 */
export function ctidRangeSQL(from: number, to: number | null): string {
  if (!Number.isSafeInteger(from) || from < 0 || (to !== null && (!Number.isSafeInteger(to) || to <= from))) {
    throw new RangeError(`bad page range [${from}, ${to})`);
  }
  return `ctid >= '(${from},0)'::tid${to === null ? '' : ` AND ctid < '(${to},0)'::tid`}`;
}

/** ` WHERE …` of a read: the user's filter (parenthesised) and a page range, either optional. */
export function whereSQL(filter: string | null, pages?: readonly [number, number | null]): string {
  const parts: string[] = [];
  if (filter) parts.push(`(${filter})`);
  if (pages) parts.push(ctidRangeSQL(pages[0], pages[1]));
  return parts.length > 0 ? ` WHERE ${parts.join(' AND ')}` : '';
}
