import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { S3Options } from '../store/s3.js';

/** A local S3-compatible server (s3rver) in a child process. */
export interface LocalS3 {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  bucket: string;
  /** Client settings s3rver needs: path style, its fixed key, checksums only when required. */
  s3: S3Options;
  stop(): Promise<void>;
  /** Last-resort synchronous stop (process exit). */
  kill(): void;
  /** Let this process exit while the server keeps running (only when started with `keep`). */
  detach(): void;
  pid: number | undefined;
}

/**
 * Start s3rver on 127.0.0.1 with `bucket` created, storing under `dir`. Resolves undefined
 * when s3rver is not installed (it is a devDependency: `npm ci` in a clone installs it).
 * s3rver accepts only the access key id `S3RVER`, and stores a streamed body with its
 * aws-chunked framing unless checksums are `WHEN_REQUIRED` (see docs/s3-compatibility.md).
 */
export async function startLocalS3(dir: string, bucket: string, opts: { keep?: boolean } = {}): Promise<LocalS3 | undefined> {
  const script = fileURLToPath(new URL('./s3rver-child.js', import.meta.url));
  const proc: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', script, dir, bucket, opts.keep ? 'keep' : 'watch'], {
    stdio: [opts.keep ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
  const exited = new Promise<void>((res) => proc.once('exit', () => res()));
  const first = await new Promise<string | undefined>((resolve) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.once('line', (l) => { rl.close(); resolve(l); });
    proc.once('exit', () => resolve(undefined));
    proc.once('error', () => resolve(undefined));
  });
  let msg: { port?: number; error?: string } = {};
  try { msg = JSON.parse(first ?? '{}') as typeof msg; } catch { /* below */ }
  if (!msg.port) {
    proc.kill('SIGKILL');
    await exited;
    if (msg.error === 'not-installed') return undefined;
    throw new Error(`s3rver did not start: ${msg.error ?? stderr.trim().split('\n').slice(-2).join(' ')}`);
  }
  const kill = () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      try { proc.kill('SIGKILL'); } catch { /* gone */ }
    }
  };
  return {
    endpoint: `http://127.0.0.1:${msg.port}`,
    bucket,
    s3: {
      endpoint: `http://127.0.0.1:${msg.port}`,
      region: 'us-east-1',
      forcePathStyle: true,
      checksum: 'WHEN_REQUIRED',
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(kill, 5000);
      await exited;
      clearTimeout(t);
    },
    kill,
    detach() {
      proc.stdout?.destroy();
      proc.stderr?.destroy();
      proc.unref();
    },
    pid: proc.pid,
  };
}
