import { DdlRefusedError } from '../errors.js';

// DDL read from storage is untrusted input: it is split into statements by a lexer that knows
// PostgreSQL's quoting, and only statements of the kinds pg_dump --schema-only --no-owner
// --no-privileges prints for tables, types and their dependents are run.

/** A token of a statement, outside of which a `;` ends the statement. */
interface Token {
  /** `word` (keyword or bare identifier, lower-cased), `ident` ("quoted"), `string`, `punct`. */
  kind: 'word' | 'ident' | 'string' | 'punct';
  text: string;
}

/** One statement: its text (comments kept, without the `;`) and its tokens. */
export interface Statement {
  text: string;
  tokens: Token[];
  /** 1-based line where it starts (for messages). */
  line: number;
}

const refuse = (what: string, line: number) =>
  new DdlRefusedError(`DDL statement at line ${line} refused: ${what}`, { hint: 'the export\'s DDL holds a statement pg_dump --schema-only does not print; nothing was run' });

/**
 * Split SQL into statements: `'…'` (with `''`), `E'…'` (backslash escapes), `"…"`, `$tag$…$tag$`,
 * `--` and nested block comments, `;` outside all of them. A psql meta-command (a line
 * starting with a backslash) is refused. Assumes standard_conforming_strings = on (pg_dump sets it).
 * @throws DdlRefusedError on unterminated quotes or comments and on meta-commands.
 */
export function splitStatements(sql: string): Statement[] {
  const out: Statement[] = [];
  let tokens: Token[] = [];
  let start = 0;
  let startLine = 1;
  let line = 1;
  let i = 0;
  const n = sql.length;
  const push = (end: number) => {
    const text = sql.slice(start, end).trim();
    if (tokens.length > 0) out.push({ text, tokens, line: startLine });
    tokens = [];
  };
  const countLines = (a: number, b: number) => { for (let k = a; k < b; k++) if (sql.charCodeAt(k) === 10) line++; };
  while (i < n) {
    const c = sql[i]!;
    if (c === '\n') { line++; i++; continue; }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f') { i++; continue; }
    if (tokens.length === 0 && c !== ';') { start = i; startLine = line; }
    if (c === '\\' && (i === 0 || sql[i - 1] === '\n')) throw refuse('a psql meta-command (a line starting with a backslash)', line);
    if (c === '-' && sql[i + 1] === '-') {
      const e = sql.indexOf('\n', i);
      i = e < 0 ? n : e;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (sql[j] === '/' && sql[j + 1] === '*') { depth++; j += 2; } else if (sql[j] === '*' && sql[j + 1] === '/') { depth--; j += 2; } else j++;
      }
      if (depth > 0) throw refuse('an unterminated comment', line);
      countLines(i, j);
      i = j;
      continue;
    }
    if (c === ';') {
      push(i);
      i++;
      start = i;
      continue;
    }
    if (c === "'" || ((c === 'E' || c === 'e') && sql[i + 1] === "'")) {
      const escapes = c !== "'";
      let j = i + (escapes ? 2 : 1);
      for (;;) {
        if (j >= n) throw refuse('an unterminated string literal', line);
        if (escapes && sql[j] === '\\') { j += 2; continue; }
        if (sql[j] === "'") {
          if (sql[j + 1] === "'") { j += 2; continue; }
          break;
        }
        j++;
      }
      tokens.push({ kind: 'string', text: sql.slice(i, j + 1) });
      countLines(i, j + 1);
      i = j + 1;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      for (;;) {
        if (j >= n) throw refuse('an unterminated quoted identifier', line);
        if (sql[j] === '"') {
          if (sql[j + 1] === '"') { j += 2; continue; }
          break;
        }
        j++;
      }
      tokens.push({ kind: 'ident', text: sql.slice(i + 1, j).replace(/""/g, '"') });
      countLines(i, j + 1);
      i = j + 1;
      continue;
    }
    if (c === '$') {
      const m = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i, i + 256));
      if (m) {
        const tag = m[0];
        const e = sql.indexOf(tag, i + tag.length);
        if (e < 0) throw refuse('an unterminated dollar-quoted string', line);
        tokens.push({ kind: 'string', text: sql.slice(i, e + tag.length) });
        countLines(i, e + tag.length);
        i = e + tag.length;
        continue;
      }
    }
    const w = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(sql.slice(i, i + 1024));
    if (w) {
      tokens.push({ kind: 'word', text: w[0].toLowerCase() });
      i += w[0].length;
      continue;
    }
    const num = /^[0-9][0-9.eE_+-]*/.exec(sql.slice(i, i + 256));
    if (num) {
      tokens.push({ kind: 'punct', text: num[0] });
      i += num[0].length;
      continue;
    }
    tokens.push({ kind: 'punct', text: c });
    i++;
  }
  push(n);
  return out;
}

/** Settings pg_dump's header sets; no other SET is run. */
export const ALLOWED_SET = new Set([
  'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'transaction_timeout', 'client_encoding',
  'standard_conforming_strings', 'check_function_bodies', 'xmloption', 'client_min_messages', 'row_security',
  'default_tablespace', 'default_table_access_method', 'default_with_oids',
]);

/** Object kinds of CREATE that are run (after CREATE [OR REPLACE] [UNIQUE] [UNLOGGED]). */
const CREATE_KINDS = [
  ['schema'], ['table'], ['type'], ['domain'], ['sequence'], ['index'], ['view'], ['materialized', 'view'],
  ['function'], ['procedure'], ['trigger'], ['constraint', 'trigger'], ['extension'], ['aggregate'], ['statistics'], ['collation'],
];
/** Object kinds of ALTER that are run (never OWNER TO, never ALTER SYSTEM, ROLE, DEFAULT PRIVILEGES …). */
const ALTER_KINDS = [['schema'], ['table'], ['type'], ['domain'], ['sequence'], ['index'], ['view'], ['materialized', 'view']];
/** Procedural languages a function may be written in. */
const LANGUAGES = new Set(['sql', 'plpgsql']);

function startsWith(ws: string[], at: number, kind: string[]): boolean {
  return kind.every((k, j) => ws[at + j] === k);
}

/**
 * Check one statement against the allowlist: SET of pg_dump's settings; SELECT
 * pg_catalog.set_config('search_path', …) and pg_catalog.setval(…); CREATE and ALTER of schemas,
 * tables, types, domains, sequences, indexes, views, materialized views (CREATE also functions
 * and procedures in sql or plpgsql, triggers, extensions, aggregates, statistics, collations);
 * COMMENT ON; REFRESH MATERIALIZED VIEW. Refused: anything else (COPY, DO, CREATE ROLE, ALTER
 * SYSTEM, GRANT, CREATE SERVER …), CREATE TABLE … AS/EXECUTE (it runs a query), OWNER TO, a
 * function in another language. Returns the statement's kind, e.g. `CREATE TABLE`.
 * @throws DdlRefusedError naming the statement.
 */
export function checkStatement(s: Statement): string {
  const t = s.tokens;
  const ws = t.map((x) => (x.kind === 'word' ? x.text : x.kind === 'punct' ? x.text : `\0${x.kind}`));
  const head = ws.slice(0, 4).filter((w) => !w.startsWith('\0')).join(' ').toUpperCase();
  const no = (why: string): never => { throw refuse(`${why}: ${excerpt(s.text)}`, s.line); };
  const depth0 = (word: string) => {
    let d = 0;
    for (const w of ws) {
      if (w === '(') d++;
      else if (w === ')') d--;
      else if (d === 0 && w === word) return true;
    }
    return false;
  };
  switch (ws[0]) {
    case 'set': {
      if (ws[1] === 'session' || ws[1] === 'local') return no('SET SESSION/LOCAL is not run');
      if (!ALLOWED_SET.has(ws[1] ?? '')) return no(`SET ${ws[1] ?? ''} is not one of pg_dump's settings`);
      if (t.length > 4) return no('SET takes one value');
      return 'SET';
    }
    case 'select': {
      // Exactly `SELECT pg_catalog.set_config('search_path', '…', false)` or `SELECT pg_catalog.setval('…', n, bool)`.
      if (ws[1] !== 'pg_catalog' || ws[2] !== '.' || (ws[3] !== 'set_config' && ws[3] !== 'setval') || ws[4] !== '(' || ws[ws.length - 1] !== ')') {
        return no('only SELECT pg_catalog.set_config and pg_catalog.setval are run');
      }
      const args = t.slice(5, -1);
      if (args.some((a) => a.kind === 'word' && a.text !== 'true' && a.text !== 'false') || args.some((a) => a.kind === 'punct' && !/^[0-9,-]+$/.test(a.text) && a.text !== ',')) {
        return no('the arguments must be constants');
      }
      if (ws[3] === 'set_config' && args[0]?.text !== "'search_path'") return no('set_config may only set search_path');
      return ws[3] === 'setval' ? 'SELECT setval' : 'SELECT set_config';
    }
    case 'comment':
      if (ws[1] !== 'on') return no('not COMMENT ON');
      return 'COMMENT ON';
    case 'refresh':
      if (!startsWith(ws, 1, ['materialized', 'view'])) return no('not REFRESH MATERIALIZED VIEW');
      return 'REFRESH MATERIALIZED VIEW';
    case 'create': {
      let k = 1;
      if (ws[k] === 'or' && ws[k + 1] === 'replace') k += 2;
      if (ws[k] === 'unique') k++;
      if (ws[k] === 'unlogged') k++;
      const kind = CREATE_KINDS.find((x) => startsWith(ws, k, x));
      if (!kind) return no(`CREATE ${ws[k]?.toUpperCase() ?? ''} is not run`);
      const name = `CREATE ${kind.join(' ').toUpperCase()}`;
      if (kind[0] === 'table' && (depth0('as') || depth0('execute'))) return no('CREATE TABLE … AS runs a query');
      if (kind[0] === 'materialized' && !/with\s+no\s+data\s*$/i.test(s.text)) return no('a materialized view must be created WITH NO DATA (it is refreshed after the data)');
      if (kind[0] === 'function' || kind[0] === 'procedure') {
        // The LANGUAGE clause sits outside the parameter list (depth 0), after the name.
        let li = -1;
        for (let j = k, d = 0; j < ws.length; j++) {
          if (ws[j] === '(') d++;
          else if (ws[j] === ')') d--;
          else if (d === 0 && ws[j] === 'language') li = j;
        }
        const lang = li >= 0 ? (t[li + 1]?.kind === 'word' || t[li + 1]?.kind === 'ident' ? t[li + 1]!.text.toLowerCase() : t[li + 1]?.text.replace(/'/g, '').toLowerCase()) : undefined;
        if (lang === undefined || !LANGUAGES.has(lang)) return no(`functions are run only in sql or plpgsql (this one: ${lang ?? 'no LANGUAGE'})`);
      }
      return name;
    }
    case 'alter': {
      const kind = ALTER_KINDS.find((x) => startsWith(ws, 1, x));
      if (!kind) return no(`ALTER ${ws[1]?.toUpperCase() ?? ''} is not run`);
      for (let j = 0; j + 1 < ws.length; j++) if (ws[j] === 'owner' && ws[j + 1] === 'to') return no('ownership changes are not run (the export is taken with --no-owner)');
      return `ALTER ${kind.join(' ').toUpperCase()}`;
    }
    default:
      return no(`${head || 'this statement'} is not a kind segferry runs`);
  }
}

function excerpt(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > 120 ? one.slice(0, 117) + '...' : one;
}

/**
 * Leave out `SET default_tablespace = <name>` (a named tablespace; `''` is kept): an export
 * taken before dumps left tablespaces out (SERVER_NEUTRAL_ARGS, lib/ddl/pgdump.ts) may carry
 * one, and a tablespace is a directory of the source's machine that the destination rarely
 * has. Its objects are then created in the destination's default tablespace.
 */
export function withoutTablespaces(statements: readonly Statement[]): Statement[] {
  return statements.filter((s) => {
    const [a, b, , v] = s.tokens;
    return !(a?.text === 'set' && b?.text === 'default_tablespace' && v !== undefined && v.text !== "''");
  });
}

/** Split and check a DDL text; every statement must pass before any runs. */
export function checkDdlText(sql: string): Statement[] {
  const st = splitStatements(sql);
  for (const s of st) checkStatement(s);
  return st;
}
