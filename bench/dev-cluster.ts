// A cluster for profiling by hand: `node --import tsx bench/dev-cluster.ts [GB]` starts 3 data nodes
// with the benchmark table, writes .bench-data/dev/nodes.json and waits; Ctrl-C stops and removes it.
import { rmSync, writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchServer, stopAll } from './lib/cluster.js';
import { bytesPerRow, growNode } from './lib/data.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const base = path.join(ROOT, '.bench-data', 'dev');
const gb = Number(process.argv[2] ?? 0.3);
rmSync(base, { recursive: true, force: true });
mkdirSync(base, { recursive: true });
const nodes: BenchServer[] = [];
const stop = () => { void stopAll().finally(() => { rmSync(base, { recursive: true, force: true }); process.exit(0); }); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
nodes.push(...(await Promise.all(['dn1', 'dn2', 'dn3'].map((name) => BenchServer.start(name)))));
const per = Math.round((gb * 1e9) / (await bytesPerRow(nodes[0]!)) / 3);
await Promise.all(nodes.map((n, i) => growNode(n, i, per)));
writeFileSync(path.join(base, 'nodes.json'), JSON.stringify({ nodes: nodes.map((n) => ({ name: n.name, url: n.url() })) }));
process.stderr.write(`ready: ${path.join(base, 'nodes.json')} (${per} rows per node)\n`);
setInterval(() => {}, 1 << 30);
