/**
 * S3-compatible storage for integration tests.
 *
 * By default an s3rver 3.7.1 runs as a child process (`node --openssl-legacy-provider
 * test/helpers/s3rver-launch.cjs <dir> 0`) on 127.0.0.1 with a free port and a data directory
 * under `<tmp>/segferry-s3-XXXXXX`. s3rver needs particular client settings (see
 * /work/shared/FACTS.md): path-style addressing, access key id `S3RVER`, and
 * `requestChecksumCalculation`/`responseChecksumValidation` = `WHEN_REQUIRED` (with the SDK
 * defaults a stream body is stored *with* its aws-chunked framing and s3rver still answers 200).
 *
 * moto: `startS3({ server: 'moto' })` runs `moto_server -H 127.0.0.1 -p <free port>` (Python moto
 * 5.2.1, preinstalled on these images; in memory, any credentials, path style, the SDK's default
 * checksums). Unlike s3rver it implements AbortMultipartUpload, ListParts, ListMultipartUploads and
 * conditional writes (`If-None-Match: *` → 412). {@link motoServerPath} tells whether it exists;
 * tests that need it skip with {@link MOTO_SKIP_MESSAGE} when it does not.
 *
 * External mode: when `SEGFERRY_TEST_S3_ENDPOINT` (or `AWS_ENDPOINT_URL`) is set, that endpoint is
 * used with `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (default us-east-1),
 * `SEGFERRY_TEST_S3_PATH_STYLE` (default true) and checksum mode `WHEN_SUPPORTED` unless
 * `SEGFERRY_TEST_S3_CHECKSUM` says `WHEN_REQUIRED`. Buckets with random names are created there
 * and left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onEmergencyExit, pidAlive, removeWhenGone } from './cleanup.js';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

/** A bucket store ready for a test. */
export interface S3Harness {
  /** Endpoint URL, e.g. `http://127.0.0.1:41234`. */
  endpoint: string;
  /** Region to sign for (s3rver: us-east-1). */
  region: string;
  /** A fresh, empty bucket created for this harness. */
  bucket: string;
  /** Credentials (s3rver: `S3RVER` / `S3RVER`). */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Path-style addressing (always true for s3rver). */
  forcePathStyle: boolean;
  /** Value for the SDK's requestChecksumCalculation and responseChecksumValidation. */
  checksum: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED';
  /** A client configured with all of the above, for assertions. */
  client: S3Client;
  /** Creates another fresh bucket and returns its name. */
  newBucket(): Promise<string>;
  /** Every key under `prefix` (all pages), in listing order, with sizes. */
  listKeys(bucket: string, prefix?: string): Promise<{ key: string; size: number }[]>;
  /** Whole object body. */
  getObject(bucket: string, key: string): Promise<Buffer>;
  /** True when an endpoint from the environment is used instead of a local s3rver. */
  external: boolean;
  /** Which server answers: a local s3rver or moto_server, or the external endpoint. */
  server: 's3rver' | 'moto' | 'external';
  /**
   * Whether the server enforces `If-None-Match: *` (for S3Options.conditionalWrites): moto yes,
   * s3rver no; external: `SEGFERRY_TEST_S3_CONDITIONAL_WRITES` (default `yes`: AWS and MinIO do).
   */
  conditionalWrites: 'yes' | 'unknown';
  /**
   * s3rver: stops the child process and deletes its directory. External: only destroys the
   * client (buckets it created are left in place). Idempotent.
   */
  stop(): Promise<void>;
}

const DIR_PREFIX = 'segferry-s3-';
const HERE = path.dirname(fileURLToPath(import.meta.url));
const LAUNCHER = path.join(HERE, 's3rver-launch.cjs');

/** A random, valid, lowercase bucket name: `sf-test-<12 hex>`. */
export function randomBucketName(): string {
  return `sf-test-${crypto.randomBytes(6).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Child registry and emergency cleanup

interface Running {
  child: ChildProcess;
  dir: string;
}
const running = new Set<Running>();
let handlersInstalled = false;
let swept = false;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  onEmergencyExit(() => {
    const pids: number[] = [];
    for (const r of running) {
      try {
        r.child.kill('SIGKILL');
      } catch {
        /* gone */
      }
      if (r.child.pid) pids.push(r.child.pid);
    }
    removeWhenGone(pids, [...running].map((r) => r.dir));
    running.clear();
  });
}

/** Deletes s3rver directories of test processes that died without cleaning up. */
function sweepStale(root: string): void {
  if (swept) return;
  swept = true;
  let names: string[] = [];
  try {
    names = fs.readdirSync(root).filter((n) => n.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const n of names) {
    const dir = path.join(root, n);
    try {
      const owner = Number(fs.readFileSync(path.join(dir, 'owner.pid'), 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && !pidAlive(owner)) {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    } catch {
      /* not ours or in use */
    }
  }
}

// ---------------------------------------------------------------------------------------------

function envFlag(v: string | undefined, dflt: boolean): boolean {
  if (v === undefined || v === '') return dflt;
  return !/^(0|false|no|off)$/i.test(v.trim());
}

function makeClient(cfg: { endpoint: string; region: string; credentials: S3Harness['credentials']; forcePathStyle: boolean; checksum: S3Harness['checksum'] }): S3Client {
  return new S3Client({
    endpoint: cfg.endpoint,
    region: cfg.region,
    credentials: cfg.credentials,
    forcePathStyle: cfg.forcePathStyle,
    requestChecksumCalculation: cfg.checksum,
    responseChecksumValidation: cfg.checksum,
  });
}

async function launchS3rver(dir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', LAUNCHER, path.join(dir, 'data'), '0'], {
    cwd: dir,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 20_000) stderr += d;
  });
  // The child exits when this pipe closes (i.e. when we die); keep it open, but unref'd.
  child.stdin!.on('error', () => {});
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`s3rver did not start within 30 s\n${stderr}`));
    }, 30_000);
    const onData = (d: string): void => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      try {
        const msg = JSON.parse(out.slice(0, nl)) as { port: number };
        resolve(msg.port);
      } catch {
        child.kill('SIGKILL');
        reject(new Error(`unexpected output from s3rver launcher: ${out}\n${stderr}`));
      }
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited during start (${code ?? signal})\n${stderr}`));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  // Let the test process exit even while s3rver runs (it follows us via stdin).
  child.stdout!.resume();
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  return { child, port };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Why moto tests are skipped when {@link motoServerPath} finds nothing. */
export const MOTO_SKIP_MESSAGE = 'moto_server not found (pip install "moto[server]"; .ci/run tries that): moto S3 tests skipped';

let motoPath: string | null | undefined;
/** Path of the moto_server executable (PATH, then ~/.pyenv/shims), or undefined when absent. */
export function motoServerPath(): string | undefined {
  if (motoPath !== undefined) return motoPath ?? undefined;
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), path.join(os.homedir(), '.pyenv', 'shims')];
  motoPath = null;
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, 'moto_server');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      motoPath = p;
      break;
    } catch {
      /* next */
    }
  }
  return motoPath ?? undefined;
}

/** A free loopback port (released just before moto binds it; a clash makes the start fail loudly). */
async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function launchMoto(dir: string): Promise<{ child: ChildProcess; port: number }> {
  const bin = motoServerPath();
  if (!bin) throw new Error(MOTO_SKIP_MESSAGE);
  const port = await freePort();
  const child = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env } });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 20_000) stderr += d;
  });
  let exited: string | undefined;
  child.once('exit', (code, signal) => { exited = `${code ?? signal}`; });
  child.once('error', (e) => { exited = e.message; });
  // Ready when it answers HTTP (it prints nothing reliable on stdout).
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited !== undefined) throw new Error(`moto_server exited during start (${exited})\n${stderr}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/moto-api/`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`moto_server did not answer within 30 s\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.stderr!.resume();
  child.unref();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  return { child, port };
}

/**
 * Starts s3rver (default) or moto_server, or connects to the external endpoint
 * (`SEGFERRY_TEST_S3_ENDPOINT`, which wins over `server`), and creates one fresh bucket.
 */
export async function startS3(opts: { server?: 's3rver' | 'moto' } = {}): Promise<S3Harness> {
  const want = opts.server ?? 's3rver';
  const externalEndpoint = process.env.SEGFERRY_TEST_S3_ENDPOINT || process.env.AWS_ENDPOINT_URL;
  let endpoint: string;
  let region: string;
  let credentials: S3Harness['credentials'];
  let forcePathStyle: boolean;
  let checksum: S3Harness['checksum'];
  let proc: Running | undefined;

  if (externalEndpoint) {
    endpoint = externalEndpoint;
    region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1';
    const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      throw new Error('SEGFERRY_TEST_S3_ENDPOINT/AWS_ENDPOINT_URL is set but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not');
    }
    credentials = { accessKeyId, secretAccessKey };
    forcePathStyle = envFlag(process.env.SEGFERRY_TEST_S3_PATH_STYLE, true);
    const ck = (process.env.SEGFERRY_TEST_S3_CHECKSUM || 'WHEN_SUPPORTED').trim().toUpperCase();
    if (ck !== 'WHEN_SUPPORTED' && ck !== 'WHEN_REQUIRED') {
      throw new Error(`SEGFERRY_TEST_S3_CHECKSUM must be WHEN_SUPPORTED or WHEN_REQUIRED, not ${ck}`);
    }
    checksum = ck;
  } else {
    // moto or s3rver: a child process of ours on a free loopback port, in its own temp folder.
    installHandlers();
    const root = os.tmpdir();
    sweepStale(root);
    const dir = await fsp.mkdtemp(path.join(root, DIR_PREFIX));
    await fsp.writeFile(path.join(dir, 'owner.pid'), `${process.pid}\n`);
    let launched: { child: ChildProcess; port: number };
    try {
      launched = await (want === 'moto' ? launchMoto(dir) : launchS3rver(dir));
    } catch (e) {
      await fsp.rm(dir, { recursive: true, force: true });
      throw e;
    }
    proc = { child: launched.child, dir };
    running.add(proc);
    endpoint = `http://127.0.0.1:${launched.port}`;
    region = 'us-east-1';
    forcePathStyle = true;
    if (want === 'moto') {
      credentials = { accessKeyId: 'moto', secretAccessKey: 'moto' };
      checksum = 'WHEN_SUPPORTED';
    } else {
      // s3rver accepts only this key id, and corrupts stream bodies with the SDK's default checksums.
      credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
      checksum = 'WHEN_REQUIRED';
    }
  }

  const client = makeClient({ endpoint, region, credentials, forcePathStyle, checksum });
  let stopped = false;

  const newBucket = async (): Promise<string> => {
    for (let attempt = 0; ; attempt++) {
      const name = randomBucketName();
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
        return name;
      } catch (e) {
        const n = (e as { name?: string }).name;
        if (attempt < 3 && (n === 'BucketAlreadyExists' || n === 'BucketAlreadyOwnedByYou')) continue;
        throw e;
      }
    }
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    client.destroy();
    if (proc) {
      running.delete(proc);
      await stopChild(proc.child);
      await fsp.rm(proc.dir, { recursive: true, force: true });
    }
  };

  let bucket: string;
  try {
    bucket = await newBucket();
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    endpoint,
    region,
    bucket,
    credentials,
    forcePathStyle,
    checksum,
    client,
    external: Boolean(externalEndpoint),
    server: externalEndpoint ? 'external' : want,
    conditionalWrites: externalEndpoint
      ? (process.env.SEGFERRY_TEST_S3_CONDITIONAL_WRITES === 'unknown' ? 'unknown' : 'yes')
      : want === 'moto' ? 'yes' : 'unknown',
    newBucket,
    async listKeys(b: string, prefix?: string) {
      const out: { key: string; size: number }[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: b, Prefix: prefix, ContinuationToken: token }));
        for (const o of page.Contents ?? []) out.push({ key: o.Key!, size: Number(o.Size ?? 0) });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async getObject(b: string, key: string) {
      const res = await client.send(new GetObjectCommand({ Bucket: b, Key: key }));
      if (!res.Body) return Buffer.alloc(0);
      return Buffer.from(await res.Body.transformToByteArray());
    },
    stop,
  };
}
