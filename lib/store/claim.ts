import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { PrefixClaimedError } from '../errors.js';
import { CLAIM_KEY } from '../manifest/keys.js';
import type { ObjectStore } from './types.js';

// The claim object, CLAIM_KEY: while it exists, one run owns the prefix. Created with a
// conditional write (S3 `If-None-Match: *`, a directory's exclusive create), so of two runs
// started together exactly one gets it (docs/naming.md).
export { CLAIM_KEY };

/** Content of {@link CLAIM_KEY}. Never holds credentials. */
export interface Claim {
  kind: 'segferry-claim';
  version: 1;
  /** Random id of the run that holds the prefix. */
  runId: string;
  /** What the run does, e.g. `export`. */
  operation: string;
  host: string;
  pid: number;
  createdAt: string;
}

/** Options of {@link acquireClaim}. */
export interface ClaimOptions {
  /** What the run does (default `export`). */
  operation?: string;
  /**
   * Run id of a dead run whose claim may be replaced (a resume of the same export). Default:
   * none, any existing claim makes the acquisition fail.
   */
  takeOver?: string;
  /**
   * Stores without enforced conditional writes only: how long to wait before reading the claim
   * back to see whether another run overwrote it (default 1000 ms).
   */
  settleMs?: number;
  /** Called once when the claim is only best-effort (the store may ignore `If-None-Match`). */
  onBestEffort?: (message: string) => void;
}

/** Read the claim under a store's root; undefined when there is none or it is unreadable. */
export async function readClaim(store: ObjectStore): Promise<Claim | undefined> {
  const b = await store.getBytes(CLAIM_KEY);
  if (!b) return undefined;
  try {
    const c = JSON.parse(b.toString('utf8')) as Claim;
    return c && c.kind === 'segferry-claim' && typeof c.runId === 'string' ? c : undefined;
  } catch {
    return undefined;
  }
}

/** One line naming a claim's holder, for errors and the CLI. */
export function describeClaim(c: Claim | undefined): string {
  return c ? `run ${c.runId} (${c.operation} on ${c.host}, pid ${c.pid}, since ${c.createdAt})` : 'another run (claim unreadable)';
}

/** The error a run gets when `holder` has the prefix. */
export function claimedError(store: ObjectStore, holder: Claim | undefined): PrefixClaimedError {
  return new PrefixClaimedError(`${store.url} is claimed by ${describeClaim(holder)}`, {
    key: CLAIM_KEY,
    hint: 'another export is writing there: choose another prefix; if that run is dead, resume it (--resume) or remove its claim (segferry cleanup --yes --remove-claim)',
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A held claim on a store's prefix. Get one with {@link acquireClaim}; call {@link PrefixClaim.confirm}
 * right before the commit point and {@link PrefixClaim.release} when done.
 */
export class PrefixClaim {
  readonly store: ObjectStore;
  readonly claim: Claim;

  constructor(store: ObjectStore, claim: Claim) {
    this.store = store;
    this.claim = claim;
  }

  get runId(): string {
    return this.claim.runId;
  }

  /** Throw PrefixClaimedError unless the stored claim is still this run's. */
  async confirm(): Promise<void> {
    const now = await readClaim(this.store);
    if (now?.runId !== this.claim.runId) throw claimedError(this.store, now);
  }

  /** Delete the claim if it is still this run's (never someone else's). Never throws. */
  async release(): Promise<void> {
    try {
      const now = await readClaim(this.store);
      if (now?.runId === this.claim.runId) await this.store.delete([CLAIM_KEY]);
    } catch {
      /* a leftover claim is reported by cleanup */
    }
  }
}

/**
 * Claim a store's prefix for this run, or throw PrefixClaimedError naming the holder.
 *
 * Where the store enforces conditional writes (`conditionalWrites: 'yes'`) this is atomic. Else it is
 * best effort: check, write, wait `settleMs`, read back and compare the run id; a run that writes
 * its claim after our read-back goes unnoticed until {@link PrefixClaim.confirm} (docs/s3-compatibility.md).
 */
export async function acquireClaim(store: ObjectStore, opts: ClaimOptions = {}): Promise<PrefixClaim> {
  const claim: Claim = {
    kind: 'segferry-claim',
    version: 1,
    runId: randomUUID(),
    operation: opts.operation ?? 'export',
    host: hostname(),
    pid: process.pid,
    createdAt: new Date().toISOString(),
  };
  const body = JSON.stringify(claim) + '\n';
  const held = new PrefixClaim(store, claim);
  const enforced = store.conditionalWrites === 'yes' && store.createExclusive !== undefined;

  // A dead run's claim named by takeOver is removed first; the exclusive create below still
  // decides between two runs taking it over at once.
  const existing = await readClaim(store);
  if (existing) {
    if (opts.takeOver === undefined || existing.runId !== opts.takeOver) throw claimedError(store, existing);
    await store.delete([CLAIM_KEY]);
  } else if (!enforced && (await store.head(CLAIM_KEY))) {
    throw claimedError(store, undefined);
  }

  if (store.createExclusive) {
    if (!(await store.createExclusive(CLAIM_KEY, body))) {
      // A retried request whose first attempt succeeded also answers 412: the claim is then ours.
      const now = await readClaim(store);
      if (now?.runId !== claim.runId) throw claimedError(store, now);
    }
  } else {
    await store.putBytes(CLAIM_KEY, body);
  }
  if (!enforced) {
    opts.onBestEffort?.(`${store.url} cannot promise conditional writes: the prefix claim is best effort (a second run started at the same moment may go unnoticed)`);
    await sleep(opts.settleMs ?? 1000);
    await held.confirm();
  }
  return held;
}

/**
 * Write the commit object (the manifest) only if this run still holds the claim and no object
 * exists under the key yet, where the store can promise that. Throws PrefixClaimedError otherwise.
 */
export async function commitExclusive(held: PrefixClaim, key: string, body: string | Buffer): Promise<void> {
  await held.confirm();
  const store = held.store;
  if (store.createExclusive && store.conditionalWrites === 'yes') {
    if (!(await store.createExclusive(key, body))) {
      // A retried request whose first attempt succeeded also answers 412.
      const now = await store.getBytes(key);
      if (now && now.equals(typeof body === 'string' ? Buffer.from(body) : body)) return;
      throw new PrefixClaimedError(`${store.url}${key} was written by another run while this one held the claim`, { key });
    }
    return;
  }
  await store.putBytes(key, body);
}
