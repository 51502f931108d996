import { describe, expect, it } from 'vitest';
import { autoThreads, onThisHost, workerExecArgv, type AutoThreadsInput } from '../../lib/export/threads.js';

describe('exporter threads: the flags a thread starts with', () => {
  it('drops preloads and loaders with their values, in both spellings, and keeps every other flag', () => {
    expect(workerExecArgv(['--import', 'tsx', '--enable-source-maps', '-r', 'dd-trace/init', '--max-old-space-size=4096', '--loader=ts-node/esm', '--experimental-loader', './l.mjs', '--require=x', '--import=y', '--no-warnings']))
      .toEqual(['--enable-source-maps', '--max-old-space-size=4096', '--no-warnings']);
  });
  it('keeps flags that merely start like one', () => {
    expect(workerExecArgv(['--importance', '--required-x'])).toEqual(['--importance', '--required-x']);
  });
});

describe('threads: auto (autoThreads)', () => {
  const base: AutoThreadsInput = { format: 'text', compressed: false, encrypted: false, exportersAtOnce: 2, cores: 2, localServers: false };
  const auto = (o: Partial<AutoThreadsInput>) => autoThreads({ ...base, ...o });

  it('on 2 and 3 cores, servers elsewhere: on for the formats whose conversion is client-bound, off for those that pass bytes through', () => {
    for (const cores of [2, 3]) {
      expect([auto({ cores, format: 'arrow' }), auto({ cores, format: 'parquet' })]).toEqual([true, true]);
      expect([auto({ cores, format: 'text' }), auto({ cores, format: 'csv' }), auto({ cores, format: 'binary' })]).toEqual([false, false, false]);
    }
  });
  it('on 2 cores, servers elsewhere: compressed or encrypted objects of a pass-through format are client-bound too', () => {
    expect([auto({ compressed: true }), auto({ encrypted: true }), auto({ format: 'binary', compressed: true }), auto({ format: 'csv', encrypted: true })]).toEqual([true, true, true, true]);
  });
  it('on 2 and 3 cores with the servers on this host: off, whatever the format (they need the cores)', () => {
    for (const cores of [2, 3]) {
      for (const format of ['text', 'arrow', 'parquet'] as const) expect(auto({ cores, format, localServers: true, compressed: true, encrypted: true })).toBe(false);
    }
  });
  it('from 4 cores: on for every format, servers here or elsewhere', () => {
    for (const format of ['text', 'csv', 'binary', 'arrow', 'parquet'] as const) {
      expect(auto({ format, cores: 4 })).toBe(true);
      expect(auto({ format, cores: 4, localServers: true })).toBe(true);
    }
    expect(auto({ cores: 64 })).toBe(true);
  });
  it('off with fewer than 2 exporters at once or fewer than 2 cores, whatever the format', () => {
    for (const format of ['text', 'arrow', 'parquet'] as const) {
      expect(auto({ format, exportersAtOnce: 1, cores: 16 })).toBe(false);
      expect(auto({ format, exportersAtOnce: 0, cores: 16 })).toBe(false);
      expect(auto({ format, cores: 1, compressed: true, encrypted: true, exportersAtOnce: 8 })).toBe(false);
    }
  });
});

describe('threads: which servers are on this host (onThisHost)', () => {
  it('loopback addresses, localhost and Unix socket directories are; other names and addresses are not', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', 'db.localhost', '::1', '[::1]', '/var/run/postgresql']) expect(onThisHost({ host })).toBe(true);
    for (const host of ['10.0.0.5', 'db1.example.com', '::ffff:10.0.0.1', 'localhost.example.com', '128.0.0.1']) expect(onThisHost({ host })).toBe(false);
  });
  it('hostaddr, when given, is where the connection goes', () => {
    expect(onThisHost({ host: 'db1.example.com', hostaddr: '127.0.0.1' })).toBe(true);
    expect(onThisHost({ host: 'localhost', hostaddr: '10.1.1.1' })).toBe(false);
  });
});
