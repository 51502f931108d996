'use strict';
/*
 * Child-process launcher for s3rver, used by test/helpers/s3.ts.
 *
 *   node --openssl-legacy-provider test/helpers/s3rver-launch.cjs <directory> [port]
 *
 * Listens on 127.0.0.1 (port 0 = any free port), silently. Once listening it prints one JSON
 * line `{"port":<n>}` on stdout. It shuts down on SIGTERM/SIGINT and when its stdin closes,
 * so it dies with the test process that spawned it even if that one is killed.
 *
 * --openssl-legacy-provider is needed because s3rver encrypts ListObjectsV2 continuation tokens
 * with DES; without the legacy provider every truncated listing answers 500.
 */
const S3rver = require('s3rver');

const directory = process.argv[2];
const port = Number(process.argv[3] || 0);
if (!directory) {
  process.stderr.write('usage: s3rver-launch.cjs <directory> [port]\n');
  process.exit(2);
}

const server = new S3rver({
  address: '127.0.0.1',
  port,
  directory,
  silent: true,
  // Path-style requests on 127.0.0.1; never treat the host name as a bucket.
  vhostBuckets: false,
});

let closing = false;
function shutdown(code) {
  if (closing) return;
  closing = true;
  setTimeout(() => process.exit(code), 2000).unref();
  const http = server.httpServer;
  if (!http) process.exit(code);
  if (typeof http.closeAllConnections === 'function') http.closeAllConnections();
  http.close(() => process.exit(code));
}

server.run().then(
  (addr) => {
    process.stdout.write(JSON.stringify({ port: addr.port }) + '\n');
  },
  (err) => {
    process.stderr.write(`s3rver failed to start: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
process.stdin.on('end', () => shutdown(0));
process.stdin.on('error', () => shutdown(0));
process.stdin.resume();
