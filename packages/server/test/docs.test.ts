/** Keeps the reference docs and the code in step: a code or key that exists must be documented, and the reverse. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { COMMANDS } from '../src/cli/commands.ts';
import { ENV_KEYS, parseConfig } from '../src/config/load.ts';
import { REVOCATION_REASONS } from '../src/services/revocation.ts';

const DOCS = resolve(import.meta.dirname, '../../../docs');
const read = (name: string) => readFileSync(resolve(DOCS, name), 'utf8');
const ERRORS_SOURCE = readFileSync(resolve(import.meta.dirname, '../src/core/errors.ts'), 'utf8');

test('every REVOKD_* error code is documented in docs/errors.md, and only those', () => {
  const inCode = new Set(ERRORS_SOURCE.match(/'REVOKD_[A-Z_]+'/g)?.map((s) => s.slice(1, -1)));
  const inDocs = new Set(
    read('errors.md')
      .match(/`REVOKD_[A-Z_]+`/g)
      ?.map((s) => s.slice(1, -1)),
  );
  inDocs.delete('REVOKD_*');
  assert.deepEqual([...inDocs].sort(), [...inCode].sort());
});

test('every OAuth error code on the wire is documented in docs/errors.md', () => {
  const union = /export type OAuthErrorCode =([\s\S]*?);/.exec(ERRORS_SOURCE)?.[1] ?? '';
  const codes = union.match(/'[a-z_]+'/g)?.map((s) => s.slice(1, -1)) ?? [];
  assert.ok(codes.length > 10);
  const doc = read('errors.md');
  for (const code of codes) assert.ok(doc.includes(`\`${code}\``), `${code} is documented`);
});

test('every environment variable is documented in docs/configuration.md', () => {
  const doc = read('configuration.md');
  for (const name of Object.keys(ENV_KEYS)) assert.ok(doc.includes(`\`${name}\``), `${name} is documented`);
});

test('the configuration example in docs/configuration.md is valid', () => {
  const example = /```json\n([\s\S]*?)```/.exec(read('configuration.md'))?.[1];
  assert.ok(example);
  const config = parseConfig(JSON.parse(example));
  assert.equal(config.clients[0]?.id, 'billing-backend');
});

test('every CLI command and revocation reason is documented', () => {
  const cli = read('cli.md');
  for (const name of Object.keys(COMMANDS))
    assert.match(cli, new RegExp(`\\| \`${name}[ \`]`), `command ${name}`);
  const api = read('api.md');
  for (const reason of REVOCATION_REASONS) {
    assert.ok(cli.includes(`\`${reason}\``) && api.includes(`\`${reason}\``), `reason ${reason}`);
  }
});
