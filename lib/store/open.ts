import { fileURLToPath } from 'node:url';
import { InvalidOptionError } from '../errors.js';
import { DirectoryStore } from './dir.js';
import { S3Store, type S3Options } from './s3.js';
import type { ObjectStore } from './types.js';

/**
 * Open a store from a location: `s3://bucket/prefix`, a `file://` URL, or a directory path.
 * DeleteObjects requires Content-MD5 on some stores, which the SDK computes under
 * `WHEN_SUPPORTED` and `WHEN_REQUIRED` alike.
 */
export function openStore(location: string, s3?: S3Options): ObjectStore {
  if (/^s3:\/\//i.test(location)) {
    const rest = location.slice(5);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? '' : rest.slice(slash + 1);
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new InvalidOptionError(`invalid bucket name in ${location}`);
    }
    return new S3Store(bucket, prefix, s3);
  }
  if (/^file:\/\//i.test(location)) {
    let path: string;
    try {
      path = fileURLToPath(location);
    } catch (e) {
      // `file://relative/x` names host "relative": a usage error, not an internal one.
      throw new InvalidOptionError(`cannot read ${location} as a file URL: ${(e as Error).message}`, {
        cause: e, hint: 'use file:///absolute/path (three slashes) or a plain directory path such as ./relative',
      });
    }
    if (path === '/' || path === '') throw new InvalidOptionError(`${location} names the root directory: give a directory under it`);
    return new DirectoryStore(path);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    throw new InvalidOptionError(`unsupported destination ${location.replace(/\/\/[^@/]*@/, '//***@')}: use s3://bucket/prefix, file:///dir or a directory path`);
  }
  if (location === '') throw new InvalidOptionError('destination is empty');
  return new DirectoryStore(location);
}
