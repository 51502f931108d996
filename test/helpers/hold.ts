import pg from 'pg';

/**
 * A session that runs `statements` inside a transaction it keeps open, to hold locks that stop
 * the code under test at a known point (a COPY FROM, a TRUNCATE). Its connection errors are
 * ignored, since tests stop the server under it; `end()` (or `ROLLBACK`) lets go.
 */
export async function holdInTransaction(url: string, ...statements: string[]): Promise<pg.Client> {
  const holder = new pg.Client({ connectionString: url });
  holder.on('error', () => {});
  await holder.connect();
  await holder.query('BEGIN');
  for (const s of statements) await holder.query(s);
  return holder;
}
