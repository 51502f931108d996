/**
 * sweepStaleServers (lib/launch/postgres.ts) removes only what dead processes left: several test
 * runs and demos may share one temp directory. No server: the directories are made by hand.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SERVERS_DIR_PREFIX, sweepStaleServers } from '../../lib/launch/postgres.js';
import { pidAlive } from '../../lib/launch/processes.js';

const root = mkdtempSync(join(tmpdir(), 'sf-sweep-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function groupDir(name: string, owner: number | undefined, postmasterPid?: number): string {
  const d = join(root, SERVERS_DIR_PREFIX + name);
  mkdirSync(join(d, 'dn1'), { recursive: true });
  if (owner !== undefined) writeFileSync(join(d, 'owner.pid'), `${owner}\n`);
  if (postmasterPid !== undefined) writeFileSync(join(d, 'dn1', 'postmaster.pid'), `${postmasterPid}\n${join(d, 'dn1')}\n`);
  return d;
}

describe('sweepStaleServers', () => {
  it('removes the directories of dead owners only; leaves live owners, kept groups (no owner.pid), other names and unrelated processes alone', () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    expect(pidAlive(dead)).toBe(false);
    // A live process that is not a postmaster of the stale directory, though its pid file says so.
    const bystander = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const stale = groupDir('stale-', dead, bystander.pid);
      const live = groupDir('live-', process.ppid);
      const mine = groupDir('mine-', process.pid);
      const kept = groupDir('kept-', undefined);
      const other = join(root, 'not-segferry');
      mkdirSync(other);
      writeFileSync(join(other, 'owner.pid'), `${dead}\n`);

      expect(sweepStaleServers(root)).toEqual([stale]);
      expect(existsSync(stale)).toBe(false);
      for (const d of [live, mine, kept, other]) expect(existsSync(d), d).toBe(true);
      expect(pidAlive(bystander.pid!)).toBe(true);
      expect(sweepStaleServers(root)).toEqual([]);
    } finally {
      bystander.kill('SIGKILL');
    }
  });

  it('a missing root is nothing to sweep', () => {
    expect(sweepStaleServers(join(root, 'absent'))).toEqual([]);
  });
});
