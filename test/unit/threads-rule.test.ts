import { describe, expect, it } from 'vitest';
import { workerExecArgv } from '../../lib/export/threads.js';

describe('exporter threads: the flags a thread starts with', () => {
  it('drops preloads and loaders with their values, in both spellings, and keeps every other flag', () => {
    expect(workerExecArgv(['--import', 'tsx', '--enable-source-maps', '-r', 'dd-trace/init', '--max-old-space-size=4096', '--loader=ts-node/esm', '--experimental-loader', './l.mjs', '--require=x', '--import=y', '--no-warnings']))
      .toEqual(['--enable-source-maps', '--max-old-space-size=4096', '--no-warnings']);
  });
  it('keeps flags that merely start like one', () => {
    expect(workerExecArgv(['--importance', '--required-x'])).toEqual(['--importance', '--required-x']);
  });
});
