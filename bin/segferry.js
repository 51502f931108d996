#!/usr/bin/env node
// The AWS SDK warns on every start, in a block of 8 lines, that its releases after January 2027
// need Node 22 (README: supported Node versions). segferry pins an SDK release that supports
// Node 20, so the block is noise: -v/--verbose shows it as one line, other warnings pass as they are.
const verbose = process.argv.slice(2).some((a) => a === '-v' || a === '--verbose' || /^-[a-zA-Z]*v[a-zA-Z]*$/.test(a));
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
  const text = typeof warning === 'string' ? warning : String(warning?.message ?? '');
  if (type === 'NodeVersionSupportWarning' || warning?.name === 'NodeVersionSupportWarning' || text.startsWith('NodeVersionSupportWarning')) {
    if (verbose) process.stderr.write(`segferry: note: AWS SDK releases after January 2027 need Node >= 22; this is Node ${process.version}\n`);
    return;
  }
  return emitWarning.call(process, warning, ...rest);
};

// pg asks at load time whether it runs in a Cloudflare Worker: without `navigator` (Node 20 has
// none; Node 21 on has one) it constructs a `Response`, which loads Node's bundled fetch
// (undici) only to throw it away: ≈ 0.04 CPU-s of every run's start-up. A `navigator` present
// while the program loads answers the question; it is removed again before anything runs.
const probe = typeof globalThis.navigator === 'undefined';
if (probe) Object.defineProperty(globalThis, 'navigator', { value: { userAgent: 'Node.js' }, configurable: true, writable: true });
try {
  const { main } = await import('../dist/cli/main.js');
  if (probe) delete globalThis.navigator;
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  // main() reports its own failures; this is only reached when the program cannot start.
  process.stderr.write(`segferry: internal error: ${String(err?.message ?? err).split('\n')[0]}\n`);
  if (verbose && err?.stack) process.stderr.write(err.stack + '\n');
  process.exitCode = 70;
}
