/**
 * Child process that runs s3rver (a devDependency) on 127.0.0.1 and reports its port on
 * stdout as one JSON line. Started by {@link startLocalS3} with `--openssl-legacy-provider`,
 * without which s3rver answers a truncated ListObjectsV2 with 500 (it encrypts continuation
 * tokens with DES). Usage: node --openssl-legacy-provider s3rver-child.js DIR BUCKET [keep]
 */
const [dir, bucket, mode] = process.argv.slice(2);

async function main(): Promise<void> {
  let S3rver: new (o: Record<string, unknown>) => { run(): Promise<{ port: number }>; close(): Promise<void> };
  try {
    // A variable name keeps TypeScript from wanting s3rver's (absent) types.
    const name = 's3rver';
    S3rver = ((await import(name)) as { default: typeof S3rver }).default;
  } catch {
    process.stdout.write(JSON.stringify({ error: 'not-installed' }) + '\n');
    process.exit(3);
  }
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory: dir,
    silent: true,
    configureBuckets: bucket ? [{ name: bucket }] : [],
  });
  const addr = await server.run();
  process.stdout.write(JSON.stringify({ port: addr.port }) + '\n');
  const stop = () => { server.close().finally(() => process.exit(0)); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', () => { /* the parent decides when to stop us */ });
  if (mode !== 'keep') {
    // If the parent dies, its end of our stdin closes: stop too, leaving no orphan.
    process.stdin.resume();
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
  }
}

main().catch((e: unknown) => {
  process.stdout.write(JSON.stringify({ error: String((e as Error)?.message ?? e) }) + '\n');
  process.exit(1);
});
