#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
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
  await exitWhenIdle();
} catch (err) {
  // main() reports its own failures; this is only reached when the program cannot start.
  process.stderr.write(`segferry: internal error: ${String(err?.message ?? err).split('\n')[0]}\n`);
  if (verbose && err?.stack) process.stderr.write(err.stack + '\n');
  process.exitCode = 70;
}

// Once the command has returned and nothing is left but stdout and stderr (no socket, child,
// timer or file operation: the command awaits its work), the process exits here rather than
// letting Node tear down its heap as it does on a natural exit: 30-70 ms of every run under
// load (bench/analysis.md, the su session). 'exit' handlers run either way; with anything else
// still active the process ends as before, when that work ends.
// Only when this file is the program run (not a module another program imports and goes on after).
async function exitWhenIdle() {
  if (!isTheProgram()) return;
  await new Promise((resolve) => setImmediate(resolve));
  if (!process.getActiveResourcesInfo().every((r) => r === 'PipeWrap' || r === 'TTYWrap')) return;
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise((resolve) => s.write('', resolve))));
  process.exit();
}

function isTheProgram() {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
