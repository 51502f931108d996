import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: CpuNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One row of a self-time summary. */
export interface ProfileEntry {
  fn: string;
  where: string;
  selfMs: number;
  share: number;
}

/** Self time per function of the (single) .cpuprofile in `dir`, largest first; shares are of busy (non-idle) time. */
export function summarizeProfile(dir: string, top = 25): { totalMs: number; entries: ProfileEntry[] } {
  const f = readdirSync(dir).find((x) => x.endsWith('.cpuprofile'));
  if (!f) throw new Error(`no .cpuprofile in ${dir}`);
  const p = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!)!;
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const cf = n.callFrame;
    const url = cf.url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, 'node_modules/').replace(/.*\/(dist|lib)\//, '$1/');
    const key = `${cf.functionName || '(anonymous)'}\t${url ? `${url}:${cf.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    if (cf.functionName !== '(idle)') total += dt;
  }
  const entries = [...self.entries()]
    .map(([k, ms]) => {
      const [fn, where] = k.split('\t') as [string, string];
      return { fn, where, selfMs: ms, share: ms / total };
    })
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, top);
  return { totalMs: total, entries };
}
