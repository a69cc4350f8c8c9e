/** The little of `oidc-provider`'s API the `token-service` benchmark uses (the package ships no types). */
declare module 'oidc-provider' {
  import type { Server } from 'node:http';

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    /** Provider is a Koa application. */
    listen(port: number, host: string, callback: () => void): Server;
  }
}
