import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestServer } from './support/harness.ts';

test('a client obtains a token, introspects it, revokes it, and introspection reports it inactive', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const { client } = server;
  const issued = await server.form(
    '/token',
    { grant_type: 'client_credentials' },
    { authorization: client.basic },
  );
  assert.equal(issued.statusCode, 200);
  const token = issued.json<{ access_token: string }>().access_token;
  const before = await server.form('/introspect', { token }, { authorization: client.basic });
  assert.equal(before.json().active, true);
  const revoked = await server.form('/revoke', { token }, { authorization: client.basic });
  assert.equal(revoked.statusCode, 200);
  const after = await server.form('/introspect', { token }, { authorization: client.basic });
  assert.deepEqual(after.json(), { active: false });
});
