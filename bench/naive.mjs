// The path a user writes by hand: one COPY through the coordinator, one object.
// usage: node bench/naive.mjs <coordinator-url> <select-sql> (s3 <endpoint> <bucket> <key> | file <path>)
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

const [url, select, kind, ...rest] = process.argv.slice(2);
const client = new pg.Client({ connectionString: url });
await client.connect();
const copy = client.query(pgCopy.to(`COPY (${select}) TO STDOUT`));
if (kind === 's3') {
  const [endpoint, bucket, key] = rest;
  const s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  await new Upload({ client: s3, params: { Bucket: bucket, Key: key, Body: copy } }).done();
  s3.destroy();
} else {
  await pipeline(copy, createWriteStream(rest[0]));
}
await client.end();
