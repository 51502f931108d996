import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3';
import { freePort } from './cluster.js';

/** s3rver accepts only this access key id (see shared FACTS). */
export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
export const S3_BUCKET = 'bench';

export interface BenchS3 {
  endpoint: string;
  dir: string;
  pid: number;
  /** Delete a prefix's objects straight from s3rver's directory (not timed). */
  removePrefix(prefix: string): void;
  stop(): Promise<void>;
}

/** Start s3rver on 127.0.0.1 as a child process, with the legacy OpenSSL provider it needs for list tokens. */
export async function startS3(base: string): Promise<BenchS3> {
  const dir = path.join(base, 's3rver');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const bin = createRequire(import.meta.url).resolve('s3rver/bin/s3rver.js');
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', bin, '-d', dir, '-a', '127.0.0.1', '-p', String(port), '-s'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3_CREDENTIALS });
  for (let i = 0; ; i++) {
    try {
      await client.send(new CreateBucketCommand({ Bucket: S3_BUCKET }));
      break;
    } catch (e) {
      if (i > 100 || child.exitCode !== null) throw new Error(`s3rver did not start: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  client.destroy();
  return {
    endpoint,
    dir,
    pid: child.pid!,
    removePrefix(prefix) {
      rmSync(path.join(dir, S3_BUCKET, prefix), { recursive: true, force: true });
    },
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}
