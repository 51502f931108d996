// Replicate throughput: `npm run bench:replicate -- [--quick] [--objects N] [--mib M]`.
// Starts moto_server on 127.0.0.1, stores N objects of M MiB as a finished export (a manifest
// naming them), then times segferry's replicate of it within the same endpoint and account
// (server-side CopyObject, plus the read-back that checks each SHA-256) against a streamed
// replicate (another access key id, so GET → PUT through the client). Prints MB/s and the ratio.
// moto keeps objects in memory: keep N × M small (default 16 × 16 MiB; --quick 4 × 6 MiB).
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { S3Store, replicateExport, type Manifest, type S3Options } from '../lib/index.js';
import { MOTO_SKIP_MESSAGE, motoServerPath, startS3 } from '../test/helpers/s3.js';

const { values: flags } = parseArgs({ args: process.argv.slice(2), options: { quick: { type: 'boolean' }, objects: { type: 'string' }, mib: { type: 'string' } } });
const quick = flags.quick === true;
const objects = Number(flags.objects ?? (quick ? 4 : 16));
const mib = Number(flags.mib ?? (quick ? 6 : 16));

if (!motoServerPath()) {
  console.log(MOTO_SKIP_MESSAGE);
  process.exit(0);
}
const moto = await startS3({ server: 'moto' });
try {
  const opts: S3Options = { endpoint: moto.endpoint, region: moto.region, forcePathStyle: true, credentials: moto.credentials, conditionalWrites: 'yes' };
  const src = new S3Store(moto.bucket, 'src', opts);
  const body = randomBytes(mib * 1024 * 1024);
  const sha256 = createHash('sha256').update(body).digest('hex');
  const objs = [];
  for (let i = 0; i < objects; i++) {
    const key = `t_dn1_segment.${i}`;
    await src.putBytes(key, body);
    objs.push({ key, table: 'public.t', node: 'dn1', segment: i, bytes: body.length, rows: 1, sha256 });
  }
  const now = new Date().toISOString();
  const m = {
    kind: 'segferry-manifest', version: 1, id: randomUUID(), createdAt: now, completedAt: now, writer: 'segferry bench',
    source: { topology: 'static', nodes: [{ name: 'dn1', host: '127.0.0.1', port: 5432, database: 'x' }] },
    format: { kind: 'text', delimiter: '\t', null: '\\N' }, sessionSettings: {}, segmentSize: body.length,
    tables: [], objects: objs,
  } as unknown as Manifest;
  await src.putBytes('manifest.json', JSON.stringify(m));
  src.close();
  const total = objects * body.length;
  const run = async (to: string, toS3: S3Options) => {
    const t0 = process.hrtime.bigint();
    const r = await replicateExport({ from: `s3://${moto.bucket}/src`, to, fromS3: opts, toS3, concurrency: 4 });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    return { s, r };
  };
  const server = await run(`s3://${moto.bucket}/server-side`, opts);
  const streamed = await run(`s3://${moto.bucket}/streamed`, { ...opts, credentials: { accessKeyId: 'other-account', secretAccessKey: 'x' } });
  const rate = (s: number) => `${(total / s / 1e6).toFixed(0)} MB/s`;
  console.log(`replicate on moto_server, ${objects} × ${mib} MiB (${(total / 1e6).toFixed(0)} MB), concurrency 4`);
  console.log(`  server-side (CopyObject + read-back)  ${server.s.toFixed(2)} s  ${rate(server.s)}  (${server.r.serverSide} server-side)`);
  console.log(`  streamed (GET → PUT)                  ${streamed.s.toFixed(2)} s  ${rate(streamed.s)}  (${streamed.r.streamed} streamed)`);
  console.log(`  server-side / streamed time           ${(server.s / streamed.s).toFixed(2)}`);
  if (server.r.serverSide !== objects || streamed.r.streamed !== objects) throw new Error('unexpected copy paths');
} finally {
  await moto.stop();
}
