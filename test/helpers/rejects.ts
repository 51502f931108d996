/** Reading rejects objects (lib/import/rejects.ts) back in tests. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One line of a rejects object (docs/cli.md#rejected-rows). */
export interface RejectLine { object: string; table: string; node: string; row: number; offset?: number; sqlstate: string; message: string; data: string }

/** Every line of every rejects object in a directory, objects in key order. */
export async function rejectLines(dir: string): Promise<RejectLine[]> {
  const out: RejectLine[] = [];
  for (const f of (await readdir(dir)).filter((k) => k.startsWith('segferry-rejects.')).sort()) {
    for (const l of (await readFile(join(dir, f), 'utf8')).split('\n').filter(Boolean)) out.push(JSON.parse(l) as RejectLine);
  }
  return out;
}
