import { SegferryError } from '../errors.js';

/**
 * Until `dispose()`, SIGINT and SIGTERM abort `signal` with ERR_ABORTED, so a command stops its
 * work cleanly (uploads aborted, no manifest) and exits 130. Call `dispose()` in a `finally`.
 */
export function onInterrupt(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onSig = () => ac.abort(new SegferryError('ERR_ABORTED', 'interrupted'));
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  return {
    signal: ac.signal,
    dispose() {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    },
  };
}
