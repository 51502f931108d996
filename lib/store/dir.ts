import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import type { Readable } from 'node:stream';
import { KeyEscapesRootError, ObjectMissingError, StorageError } from '../errors.js';
import { partialKey } from '../manifest/keys.js';
import { throwIfAborted } from '../util/pool.js';
import type { ByteRange, ObjectInfo, ObjectStore, ObjectWriter } from './types.js';

/**
 * A local directory as a store. Objects are files named by their keys; an upload is written
 * to `<key>.segferry-partial-<random>` and renamed into place when it finishes, so a
 * reader never sees a half-written object and an aborted upload leaves nothing.
 */
export class DirectoryStore implements ObjectStore {
  readonly root: string;
  readonly url: string;
  /** A write resolves once its chunk is in the file (see {@link ObjectStore.releasesWrites}). */
  readonly releasesWrites = true;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.url = pathToFileURL(this.root).href;
  }

  /** Map a key to a path, refusing keys that would leave the root. */
  pathOf(key: string): string {
    if (key.includes('\0')) throw new KeyEscapesRootError(`key contains a NUL byte: ${JSON.stringify(key)}`, { key });
    const p = path.resolve(this.root, key);
    if (p !== this.root && !p.startsWith(this.root + path.sep)) {
      throw new KeyEscapesRootError(`key ${JSON.stringify(key)} would escape the store root ${this.root}`, { key });
    }
    if (p === this.root) throw new KeyEscapesRootError('empty key', { key });
    return p;
  }

  /**
   * Folders this store made (or found) already: each object and checkpoint write made its
   * folder again (a recursive mkdir, ≈ 0.4 ms of the main thread each, a page range's objects
   * and checkpoint save two per range, bench/range-cost.ts). Forgotten when the root is removed.
   */
  readonly #made = new Set<string>();

  async #mkdir(dir: string): Promise<void> {
    if (this.#made.has(dir)) return;
    await fsp.mkdir(dir, { recursive: true });
    this.#made.add(dir);
  }

  /** Whether the root existed when {@link check} first looked (undefined: not checked yet). */
  #rootExisted: boolean | undefined;

  async check(): Promise<void> {
    try {
      const existed = await fsp.stat(this.root).then((s) => s.isDirectory(), (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return false;
        throw e;
      });
      this.#rootExisted ??= existed;
      await fsp.mkdir(this.root, { recursive: true });
      await fsp.access(this.root, fsp.constants.W_OK);
    } catch (err) {
      throw new StorageError(`directory ${this.root} is not writable: ${(err as Error).message}`, { cause: err });
    }
  }

  async removeRootIfEmpty(): Promise<void> {
    // rmdir refuses a folder that holds anything, so nothing of anyone else's can go.
    this.#made.clear();
    if (this.#rootExisted === false) await fsp.rmdir(this.root).catch(() => {});
  }

  createWriter(key: string, opts: { signal?: AbortSignal } = {}): ObjectWriter {
    const final = this.pathOf(key);
    const tmp = partialKey(final);
    const signal = opts.signal;
    let ws: WriteStream | undefined;
    let failed: Error | undefined;
    const open = async (): Promise<WriteStream> => {
      if (ws) return ws;
      await this.#mkdir(path.dirname(final));
      throwIfAborted(signal);
      ws = createWriteStream(tmp, { flags: 'wx', highWaterMark: 1 << 20 });
      ws.on('error', (e) => { failed = e; });
      return ws;
    };
    // Cancel: destroying the stream ends a wait for 'drain' ('close'); the caller's abort() removes the file.
    const onAbort = () => { ws?.destroy(); };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    const unlisten = () => signal?.removeEventListener('abort', onAbort);
    const wrap = (e: unknown) => new StorageError(`writing ${key} in ${this.root} failed: ${(e as Error).message}`, { key, cause: e });
    const check = () => {
      throwIfAborted(signal);
      if (failed) throw wrap(failed);
    };
    return {
      write: async (chunk) => {
        const s = await open();
        check();
        // Resolve once this chunk is written (releasesWrites): the caller may then reuse its
        // buffer. The callback also comes, with an error, when the stream fails or is destroyed.
        // The 1 MiB blocks of an export are over the stream's mark anyway, so they waited for
        // 'drain' before: one write at a time either way.
        await new Promise<void>((resolve) => { s.write(chunk, (e) => { if (e && !failed) failed = e; resolve(); }); });
        check();
      },
      finish: async () => {
        unlisten();
        const s = await open();
        try {
          // A stream the signal destroyed holds a cut-off file: never rename it into place.
          throwIfAborted(signal);
          await new Promise<void>((resolve, reject) => {
            s.once('error', reject);
            s.end(() => resolve());
          });
          if (failed) throw failed;
          await fsp.rename(tmp, final);
        } catch (e) {
          await fsp.rm(tmp, { force: true });
          throw signal?.aborted && e === signal.reason ? e : wrap(e);
        }
      },
      abort: async () => {
        unlisten();
        if (ws && !ws.destroyed) {
          ws.destroy();
          await once(ws, 'close').catch(() => {});
        }
        await fsp.rm(tmp, { force: true }).catch(() => {});
      },
    };
  }

  async read(key: string, opts: { signal?: AbortSignal; range?: ByteRange } = {}): Promise<Readable> {
    const p = this.pathOf(key);
    try {
      await fsp.access(p);
    } catch {
      throw new ObjectMissingError(`object ${key} not found in ${this.url}`, { key });
    }
    const o: { highWaterMark: number; signal?: AbortSignal; start?: number; end?: number } = { highWaterMark: 1 << 20 };
    if (opts.signal) o.signal = opts.signal;
    if (opts.range) {
      o.start = opts.range.start;
      o.end = opts.range.end - 1; // inclusive
    }
    return createReadStream(p, o);
  }

  async putBytes(key: string, body: Buffer | string): Promise<void> {
    const final = this.pathOf(key);
    const tmp = partialKey(final);
    try {
      await this.#mkdir(path.dirname(final));
      await fsp.writeFile(tmp, body, { flag: 'wx' });
      await fsp.rename(tmp, final);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw new StorageError(`writing ${key} in ${this.root} failed: ${(e as Error).message}`, { key, cause: e });
    }
  }

  /** A directory enforces exclusive creation (O_EXCL, via link(2)). */
  readonly conditionalWrites = 'yes' as const;

  async createExclusive(key: string, body: Buffer | string): Promise<boolean> {
    const final = this.pathOf(key);
    const tmp = partialKey(final);
    try {
      await this.#mkdir(path.dirname(final));
      await fsp.writeFile(tmp, body, { flag: 'wx' });
      // link(2) fails with EEXIST when the key exists: atomic like O_EXCL, and readers never
      // see the object half-written (which `open(final, 'wx')` + write would show).
      await fsp.link(tmp, final);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw new StorageError(`writing ${key} in ${this.root} failed: ${(e as Error).message}`, { key, cause: e });
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  async getBytes(key: string): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(this.pathOf(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StorageError(`reading ${key} failed: ${(e as Error).message}`, { key, cause: e });
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await fsp.stat(this.pathOf(key));
      return st.isFile() ? { key, size: st.size, lastModified: st.mtime.toISOString() } : undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StorageError(`stat ${key} failed: ${(e as Error).message}`, { key, cause: e });
    }
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    const out: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw new StorageError(`listing ${dir} failed: ${(e as Error).message}`, { cause: e });
      }
      for (const ent of entries) {
        const full = path.join(dir, ent.name);
        if (ent.isDirectory()) await walk(full);
        else if (ent.isFile()) {
          const key = path.relative(this.root, full).split(path.sep).join('/');
          if (key.startsWith(prefix)) {
            // Gone since the folder was read: another writer renamed (a partial upload put in
            // place) or deleted it. Not an error; a later list sees its new name.
            const st = await fsp.stat(full).catch((e: NodeJS.ErrnoException) => {
              if (e.code === 'ENOENT') return undefined;
              throw new StorageError(`listing ${dir} failed: ${e.message}`, { cause: e });
            });
            if (st) out.push({ key, size: st.size, lastModified: st.mtime.toISOString() });
          }
        }
      }
    };
    await walk(this.root);
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* out;
  }

  async delete(keys: string[]): Promise<void> {
    for (const k of keys) await fsp.rm(this.pathOf(k), { force: true });
  }

  close(): void {}
}
