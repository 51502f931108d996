#!/usr/bin/env node
// The AWS SDK warns on every start that its releases after January 2027 need Node 22. segferry
// pins an SDK release that supports Node 20, so that notice is noise for CLI users.
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
  const text = typeof warning === 'string' ? warning : warning?.name;
  if (type === 'NodeVersionSupportWarning' || text === 'NodeVersionSupportWarning' || /NodeVersionSupportWarning/.test(String(warning))) return;
  return emitWarning.call(process, warning, ...rest);
};

const { main } = await import('../dist/cli/main.js');
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err); process.exitCode = 70; },
);
