/** docs/manifest.schema.json as a validator, for tests that write manifests with optional fields. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { ROOT } from './cli.js';

// ajv-formats is CommonJS; its default export arrives as the module or as `.default`.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv2020) => Ajv2020;

let validate: ReturnType<Ajv2020['compile']> | undefined;

/** The schema's errors for `m` as JSON, or '' when it is valid (same Ajv settings as manifest-schema.test.ts). */
export function manifestSchemaErrors(m: unknown): string {
  if (!validate) {
    const schema = JSON.parse(readFileSync(join(ROOT, 'docs', 'manifest.schema.json'), 'utf8')) as Record<string, unknown>;
    validate = addFormats(new Ajv2020({ allErrors: true, strict: true, strictRequired: false })).compile(schema);
  }
  return validate(m) ? '' : JSON.stringify(validate.errors, null, 2);
}
