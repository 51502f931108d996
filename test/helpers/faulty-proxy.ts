import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the proxy did, for assertions. */
export interface FaultStats {
  requests: number;
  slowDown: number;
  serverError: number;
  dropped: number;
  delayed: number;
  /** GET responses cut off after part of the body. */
  truncated: number;
}

/** A loopback HTTP proxy in front of an S3 endpoint that injects faults into a share of requests. */
export interface FaultyProxy {
  /** http://127.0.0.1:<port>: use as the S3 endpoint. */
  endpoint: string;
  stats: FaultStats;
  /** Change the fault share (0 disables faults). */
  setRate(rate: number): void;
  close(): Promise<void>;
}

/** Small deterministic PRNG (mulberry32) so runs are repeatable. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Start a proxy on 127.0.0.1 forwarding to `target` (an http://127.0.0.1 URL). For a share
 * `rate` of requests it answers 503 SlowDown, 500 InternalError, drops the connection before
 * answering, or delays the request by up to 300 ms (a quarter each). `methods` limits faults to
 * those HTTP methods (e.g. PUT: uploads only) and `paths` to URLs it matches; `delayOnly` makes
 * every fault a delay, `failOnly` every fault a failure (SlowDown, 500 or a dropped connection). Request bodies of failed
 * requests are drained first, as a real server would read them.
 */
export async function startFaultyProxy(target: string, opts: { rate?: number; seed?: number; methods?: string[]; truncateGets?: boolean; delayOnly?: boolean; paths?: RegExp; failOnly?: boolean } = {}): Promise<FaultyProxy> {
  const t = new URL(target);
  if (t.hostname !== '127.0.0.1' && t.hostname !== 'localhost') throw new Error('the faulty proxy only forwards to loopback');
  let rate = opts.rate ?? 0.05;
  const rnd = prng(opts.seed ?? 42);
  const stats: FaultStats = { requests: 0, slowDown: 0, serverError: 0, dropped: 0, delayed: 0, truncated: 0 };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, truncate = false) => {
    const up = http.request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        const len = Number(ur.headers['content-length'] ?? 0);
        if (!truncate || len < 2) return void ur.pipe(res);
        // Send about half the body, then cut the connection.
        let sent = 0;
        ur.on('data', (c: Buffer) => {
          if (sent >= len / 2) return;
          const part = c.subarray(0, Math.max(1, Math.min(c.length, Math.floor(len / 2) - sent)));
          sent += part.length;
          res.write(part);
          if (sent >= len / 2) { ur.destroy(); res.socket?.destroy(); }
        });
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  };

  const errorXml = (code: string, message: string) =>
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>faulty-proxy</RequestId></Error>`;

  const server = http.createServer((req, res) => {
    stats.requests++;
    const r = rnd();
    if (r >= rate || (opts.methods && !opts.methods.includes(req.method ?? '')) || (opts.paths && !opts.paths.test(req.url ?? ''))) return forward(req, res);
    const kind = opts.delayOnly ? 3 : Math.floor((r / rate) * (opts.failOnly ? 3 : 4));
    if (opts.truncateGets && req.method === 'GET' && /_segment\.\d+(\?|$)/.test(req.url ?? '') && kind % 2 === 0) {
      stats.truncated++;
      return forward(req, res, true);
    }
    const drain = (then: () => void) => {
      req.resume();
      req.on('end', then);
      req.on('error', then);
    };
    if (kind === 0) {
      stats.slowDown++;
      drain(() => {
        res.writeHead(503, { 'content-type': 'application/xml' });
        res.end(errorXml('SlowDown', 'Please reduce your request rate.'));
      });
    } else if (kind === 1) {
      stats.serverError++;
      drain(() => {
        res.writeHead(500, { 'content-type': 'application/xml' });
        res.end(errorXml('InternalError', 'We encountered an internal error. Please try again.'));
      });
    } else if (kind === 2) {
      stats.dropped++;
      drain(() => req.socket.destroy());
    } else {
      stats.delayed++;
      setTimeout(() => forward(req, res), Math.floor(rnd() * 300));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats,
    setRate: (x) => { rate = x; },
    close: () => new Promise<void>((resolve) => {
      agent.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
