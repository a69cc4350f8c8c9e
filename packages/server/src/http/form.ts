import { OAuthError } from '../core/errors.ts';

/**
 * An `application/x-www-form-urlencoded` body (RFC 6749 Appendix B). Parameters must not repeat (RFC 6749 §3.1,
 * §3.2) except those that the standards define as repeatable, and must not be empty strings where they matter.
 */
export class FormParams {
  readonly #values: Map<string, string[]>;

  constructor(values: Map<string, string[]>) {
    this.#values = values;
  }

  static parse(body: string): FormParams {
    const values = new Map<string, string[]>();
    for (const [name, value] of new URLSearchParams(body)) {
      const list = values.get(name);
      if (list) list.push(value);
      else values.set(name, [value]);
    }
    return new FormParams(values);
  }

  static empty(): FormParams {
    return new FormParams(new Map());
  }

  has(name: string): boolean {
    return this.#values.has(name);
  }

  /** The parameter's value, undefined when absent or empty (RFC 6749 §3.1: empty means omitted). */
  optional(name: string): string | undefined {
    const list = this.#values.get(name);
    if (!list) return undefined;
    if (list.length > 1) throw new OAuthError('invalid_request', `parameter ${name} must not be repeated`);
    return list[0] === '' ? undefined : list[0];
  }

  required(name: string): string {
    const value = this.optional(name);
    if (value === undefined) throw new OAuthError('invalid_request', `parameter ${name} is required`);
    return value;
  }

  /** A parameter the standards allow to repeat (RFC 8707 `resource`, RFC 8693 `audience`). */
  all(name: string): string[] {
    return (this.#values.get(name) ?? []).filter((v) => v !== '');
  }

  /** Space-delimited scope (RFC 6749 §3.3), or undefined when absent. */
  scope(): string[] | undefined {
    const scope = this.optional('scope');
    if (scope === undefined) return undefined;
    if (!/^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/.test(scope)) {
      throw new OAuthError('invalid_scope', 'scope is malformed');
    }
    return scope.split(' ');
  }

  /** Throws if any parameter repeats, other than those named in `except`. */
  assertSingleValued(except: readonly string[] = []): void {
    for (const [name, list] of this.#values) {
      if (list.length > 1 && !except.includes(name)) {
        throw new OAuthError('invalid_request', `parameter ${name} must not be repeated`);
      }
    }
  }
}
