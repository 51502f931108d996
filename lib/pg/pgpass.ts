import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The parts of an endpoint a password file line is matched against. */
export interface PasswordFileKey {
  host: string;
  port: number;
  database: string;
  user: string;
}

/**
 * The password file's path as libpq finds it: `PGPASSFILE`, else `~/.pgpass` (default).
 */
export function passwordFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PGPASSFILE || join(env.HOME || homedir(), '.pgpass');
}

/**
 * Split one password file line into its five fields: `:` separates, `\:` and `\\` are a
 * literal colon and backslash (libpq, "The Password File"). The password runs to the end of the
 * line, unescaped colons included, as pg's reader (the pgpass package) took it before; libpq
 * would stop at the first one. Undefined for a line without five fields.
 */
export function splitPasswordLine(line: string): string[] | undefined {
  const fields: string[] = [];
  let cur = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
    } else if (c === ':' && fields.length < 4) {
      fields.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  fields.push(cur);
  return fields.length === 5 ? fields : undefined;
}

/**
 * The password of the first line of the password file that matches `key`
 * (`hostname:port:database:username:password`, each of the first four literal or `*`;
 * `localhost` also matches a Unix socket directory; lines starting with `#` are comments), or
 * undefined. As libpq does, a file that is not a regular file, or that group or others may
 * read or write (permissions beyond 0600), is ignored. segferry reads the file itself rather
 * than through pg, whose support for it prints a deprecation warning on every use and ends
 * with pg 9.
 */
export function passwordFromFile(key: PasswordFileKey, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const path = passwordFilePath(env);
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) return undefined;
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) return undefined;
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const want = [key.host, String(key.port), key.database, key.user];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) continue;
    const f = splitPasswordLine(line);
    if (!f) continue;
    const ok = want.every((w, i) => f[i] === '*' || f[i] === w || (i === 0 && f[i] === 'localhost' && w.startsWith('/')));
    if (ok) return f[4];
  }
  return undefined;
}
