import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { SIGNING_ALGORITHMS } from '../../src/config/schema.ts';
import { startTestServer } from '../support/harness.ts';

for (const algorithm of SIGNING_ALGORITHMS) {
  test(`with ${algorithm} keys, tokens are signed, published, introspected and revoked`, async (t) => {
    const server = await startTestServer({ config: { signing: { algorithm } } });
    t.after(() => server.close());
    const { client } = server;

    const jwks = (await server.app.inject({ method: 'GET', url: '/jwks.json' })).json<{
      keys: Array<{ kid: string; alg: string; d?: string }>;
    }>();
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]!.alg, algorithm);
    assert.equal(jwks.keys[0]!.d, undefined, 'no private member is published');

    const pair = await server.login('alice');
    const header = decodeProtectedHeader(pair.access_token);
    assert.deepEqual([header.alg, header.kid, header.typ], [algorithm, jwks.keys[0]!.kid, 'at+jwt']);

    const introspect = async () =>
      (
        await server.form('/introspect', { token: pair.access_token }, { authorization: client.basic })
      ).json();
    assert.equal((await introspect()).active, true);
    const revoked = await server.form(
      '/revoke',
      { token: pair.access_token },
      { authorization: client.basic },
    );
    assert.equal(revoked.statusCode, 200);
    assert.deepEqual(await introspect(), { active: false });
  });
}
