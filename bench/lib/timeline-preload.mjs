// Loaded with `node --import` into a segferry CLI process by bench/streams-timeline.ts: records
// when things happen in the client (epoch milliseconds) and writes them as JSON to
// $SF_TIMELINE_OUT when the process exits. It only wraps, never changes what the program does:
// pg's Client.connect (start, end, backend pid) and the directory store's file operations
// (objects renamed into place, the claim and the manifest linked, the checkpoint and the claim
// removed). Plain JavaScript, so that the measured process loads no TypeScript loader.
import fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const out = process.env.SF_TIMELINE_OUT;
const now = () => performance.timeOrigin + performance.now();
const marks = [{ t: performance.timeOrigin, what: 'process' }, { t: now(), what: 'preload' }];
const mark = (what, extra = {}) => { marks.push({ t: now(), what, ...extra }); };

// The pg the program imports: resolved from the program's own folder (SF_TIMELINE_ROOT).
const require = createRequire(path.join(process.env.SF_TIMELINE_ROOT ?? process.cwd(), 'package.json'));
const pg = require('pg');
const connect = pg.Client.prototype.connect;
pg.Client.prototype.connect = function (...args) {
  const app = this.connectionParameters?.application_name;
  mark('connect', { app });
  const r = connect.apply(this, args);
  if (r && typeof r.then === 'function') r.then(() => mark('connected', { app, pid: this.processID }), () => {});
  return r;
};

const fsp = fs.promises;
for (const name of ['rename', 'link', 'rm', 'unlink']) {
  const f = fsp[name];
  fsp[name] = async function (...args) {
    const file = path.basename(String(args[name === 'rename' || name === 'link' ? 1 : 0]));
    try {
      return await f.apply(this, args);
    } finally {
      mark(name, { file });
    }
  };
}
syncBuiltinESMExports();

process.on('exit', () => {
  mark('exit');
  if (out) fs.writeFileSync(out, JSON.stringify(marks));
});
