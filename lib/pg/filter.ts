import { InvalidOptionError, fromDatabaseError } from '../errors.js';
import { SESSION_SETTINGS, applySettings, closeQuietly, connect, type NodeEndpoint } from './conn.js';
import { quoteQualified, type QualifiedName } from './sql.js';

// A `--where` filter is trusted SQL, but it is pasted into `COPY (SELECT … WHERE (<filter>))
// TO STDOUT`, which runs as a simple query: a `)` or `;` in it could end the SELECT and start
// another statement (`TO PROGRAM`, `COMMIT; CREATE …`). These checks keep it one expression.

/**
 * Lexical check of a WHERE filter, cheap and without a server: refuse an empty filter,
 * parentheses that do not balance, unterminated quotes, comment tokens (`--`, `/*`) and `;`
 * outside string literals and quoted identifiers. Understands '…' (with `''`), E'…' (with
 * backslash escapes), "…" and $tag$…$tag$, under standard_conforming_strings on, which every
 * segferry session sets (SESSION_SETTINGS).
 *
 * @throws InvalidOptionError naming what is wrong (never echoing the filter).
 */
export function checkFilterText(filter: string): void {
  const bad = (why: string) => new InvalidOptionError(`the where filter is refused: ${why}`, {
    hint: 'give one boolean expression, e.g. --where "id % 4 = 0"; put ; ) -- /* only inside string literals',
  });
  if (typeof filter !== 'string' || filter.trim() === '') throw bad('it is empty');
  if (filter.includes('\0')) throw bad('it contains a NUL byte');
  let depth = 0;
  let i = 0;
  const n = filter.length;
  const isIdent = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_$\u0080-\uffff]/.test(c);
  while (i < n) {
    const c = filter[i]!;
    const next = filter[i + 1];
    if (c === "'") {
      // E'…' / e'…' takes backslash escapes; a plain or U&'…' literal only doubles quotes.
      const prev = filter[i - 1];
      const escapes = (prev === 'E' || prev === 'e') && !isIdent(filter[i - 2]);
      i++;
      for (;;) {
        if (i >= n) throw bad('a string literal is not closed');
        const d = filter[i]!;
        if (escapes && d === '\\') { i += 2; continue; }
        if (d === "'") {
          if (filter[i + 1] === "'") { i += 2; continue; }
          break;
        }
        i++;
      }
      i++;
      continue;
    }
    if (c === '"') {
      const end = filter.indexOf('"', i + 1);
      if (end < 0) throw bad('a quoted identifier is not closed');
      // A doubled "" inside an identifier reads as two adjacent quoted parts: same effect.
      i = end + 1;
      continue;
    }
    if (c === '$' && !isIdent(filter[i - 1])) {
      const m = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(filter.slice(i));
      if (m) {
        const tag = m[0];
        const end = filter.indexOf(tag, i + tag.length);
        if (end < 0) throw bad('a dollar-quoted string is not closed');
        i = end + tag.length;
        continue;
      }
    }
    if (c === ';') throw bad('it contains ; outside a string literal');
    if (c === '-' && next === '-') throw bad('it contains a -- comment');
    if (c === '/' && next === '*') throw bad('it contains a /* comment');
    if (c === '*' && next === '/') throw bad('it contains */ outside a string literal');
    if (c === '(') depth++;
    if (c === ')') {
      depth--;
      if (depth < 0) throw bad('it closes a parenthesis it did not open');
    }
    i++;
  }
  if (depth !== 0) throw bad('its parentheses do not balance');
}

/** Where to check a filter: one relation on one node. */
export interface FilterTarget {
  /** Node name, for errors. */
  node: string;
  endpoint: NodeEndpoint;
  relation: QualifiedName;
}

/**
 * Check a filter lexically ({@link checkFilterText}), then on the servers: prepare and run
 * `SELECT 1 FROM <relation> WHERE (<filter>) LIMIT 0` as a named prepared statement (the
 * extended protocol refuses a second statement), in a READ ONLY transaction under segferry's
 * session settings, rolled back. One session per node. Nothing is read: LIMIT 0.
 *
 * @throws InvalidOptionError (with the server's SQLSTATE) when the server refuses the filter;
 *   connection failures as the usual typed errors.
 */
export async function checkFilter(filter: string, targets: FilterTarget[]): Promise<void> {
  checkFilterText(filter);
  const byNode = new Map<string, FilterTarget[]>();
  for (const t of targets) byNode.set(t.node, [...(byNode.get(t.node) ?? []), t]);
  for (const [node, ts] of byNode) {
    const client = await connect(ts[0]!.endpoint, { node, applicationName: 'segferry plan' });
    try {
      await client.query('BEGIN TRANSACTION READ ONLY');
      await applySettings(client, SESSION_SETTINGS);
      let k = 0;
      for (const t of ts) {
        const text = `SELECT 1 FROM ${quoteQualified(t.relation)} WHERE (${filter}) LIMIT 0`;
        try {
          // A name makes pg use Parse/Bind/Execute even without parameters.
          await client.query({ name: `segferry_filter_${k++}`, text, values: [] });
        } catch (e) {
          const d = fromDatabaseError(e, { node, table: `${t.relation.schema}.${t.relation.name}`, action: 'where filter check' });
          if (d.sqlState === undefined || d.sqlState.startsWith('08')) throw d;
          throw new InvalidOptionError(`the where filter is refused on node ${node} for ${t.relation.schema}.${t.relation.name}: ${(e as Error).message}`, {
            node, table: `${t.relation.schema}.${t.relation.name}`, sqlState: d.sqlState, cause: e,
            hint: 'give one boolean expression over the table\'s columns, valid on every node',
          });
        }
      }
      await client.query('ROLLBACK');
    } finally {
      await closeQuietly(client);
    }
  }
}
