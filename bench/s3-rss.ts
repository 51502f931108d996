// Peak client RSS and client CPU-s per GB of one TEXT export (with checksums) of one table over
// 3 nodes to s3rver, at three table sizes (gb/3, gb, 2·gb): the S3 upload's memory must stay
// flat as the table grows (docs/memory.md). `--before PATH` alternates this build with another
// build's bin/segferry.js in the same run, at every size (how issue 17's figures were taken).
// A diagnostic run by hand (`npx tsx bench/s3-rss.ts`; `--quick` for a smoke run): `npm run bench`
// measures the same peak RSS at the same three sizes in its core part, so it is not a section.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchServer } from './lib/cluster.js';
import { runSection, sectionFlags, withBenchServers } from './lib/common.js';
import { bytesPerRow, growNode, TABLE } from './lib/data.js';
import { measure, type Meters } from './lib/measure.js';
import { S3_BUCKET, S3_CREDENTIALS, startS3 } from './lib/s3.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const GB = 1e9;
const flags = sectionFlags({
  usage: 'bench/s3-rss.ts [--quick] [--gb 1] [--reps 1] [--before path/to/bin/segferry.js] [--part-size 8MiB] [--streams auto]',
  rows: { full: 0, quick: 0 },
  reps: { full: 1, quick: 1 },
  options: { gb: { type: 'string' }, before: { type: 'string' }, 'part-size': { type: 'string' }, streams: { type: 'string' } },
});
const gb = Number(flags.values.gb ?? (flags.quick ? 0.03 : 1));
const log = (m: string) => process.stderr.write(`[s3-rss ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

runSection(async () => {
  await withBenchServers(['dn1', 'dn2', 'dn3'], 'segferry-s3rss-', async (nodes, dir) => {
    const s3 = await startS3(dir);
    try {
      const topo = path.join(dir, 'nodes.json');
      writeFileSync(topo, JSON.stringify({ nodes: nodes.map((n) => ({ name: n.name, url: n.url() })) }));
      const meters: Meters = {
        serverPids: () => nodes.map((s) => s.pid),
        s3Pid: () => s3.pid,
        quiesce: async () => { for (const s of nodes) await s.quiesce(); },
      };
      const env = { ...process.env, AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' };
      const builds: [string, string][] = [['this build', path.join(ROOT, 'bin/segferry.js')]];
      if (typeof flags.values.before === 'string') builds.push(['before', path.resolve(flags.values.before)]);
      const bpr = await bytesPerRow(nodes[0]!);
      let seq = 0;
      const lines: string[] = [];
      for (const size of [gb / 3, gb, gb * 2]) {
        const perNode = Math.round((size * GB) / bpr / 3);
        log(`growing to ${size.toFixed(2)} GB (${perNode} rows per node)`);
        await Promise.all(nodes.map((n, i) => growNode(n as BenchServer, i, perNode)));
        for (let rep = 1; rep <= flags.reps; rep++) {
          for (const [label, cli] of rep % 2 ? builds : [...builds].reverse()) {
            const prefix = `x${seq++}`;
            const args = [cli, 'export', '--topology', topo, '--table', TABLE, '--format', 'text', '-q',
              '--to', `s3://${S3_BUCKET}/${prefix}`, '--s3-endpoint', s3.endpoint, '--s3-path-style', '--s3-checksum', 'WHEN_REQUIRED'];
            if (typeof flags.values['part-size'] === 'string') args.push('--s3-part-size', flags.values['part-size']);
            if (typeof flags.values.streams === 'string') args.push('--streams', flags.values.streams);
            const cost = await measure([{ cmd: process.execPath, args, env }], meters);
            const mf = path.join(s3.dir, S3_BUCKET, prefix, 'manifest.json._S3rver_object');
            const objects = existsSync(mf) ? (JSON.parse(readFileSync(mf, 'utf8')) as { objects: { bytes: number }[] }).objects : [];
            const bytes = objects.reduce((a, x) => a + x.bytes, 0);
            s3.removePrefix(prefix);
            const line = `${size.toFixed(2)} GB target, ${(bytes / GB).toFixed(2)} GB TEXT, ${label}, ${objects.length} objects: peak RSS ${(cost.clientMaxRssKB / 1024).toFixed(0)} MB, client ${(cost.clientCpuS / (bytes / GB)).toFixed(2)} CPU-s/GB, s3rver ${(cost.s3CpuS / (bytes / GB)).toFixed(2)} CPU-s/GB, wall ${cost.wallS.toFixed(1)} s`;
            log(line);
            lines.push(line);
          }
        }
      }
      process.stdout.write(`TEXT export with checksums, 3 nodes → s3rver${flags.values['part-size'] ? `, --s3-part-size ${String(flags.values['part-size'])}` : ' (default parts)'}, --streams ${typeof flags.values.streams === 'string' ? flags.values.streams : 'auto'}\n${lines.join('\n')}\n`);
    } finally {
      await s3.stop();
    }
  });
});
