import pg from 'pg';
import { RevokdError } from '../../core/errors.ts';

/**
 * What a failed statement means for the store. PostgreSQL reports SQLSTATE codes; the driver reports a lost or
 * refused connection as a plain `Error` (or a Node system error) with no SQLSTATE.
 */
export type Failure =
  /** Serialization failure or deadlock (40001, 40P01): the whole transaction may be retried. */
  | 'retry'
  /** A constraint or data error (classes 22, 23) caused by this write alone: it is refused, as in SQLite. */
  | 'refused'
  /** Anything else (connection lost, server shutting down, timeout...): the store is unavailable. */
  | 'unavailable';

export function classify(error: unknown): Failure {
  if (!(error instanceof pg.DatabaseError)) return 'unavailable';
  const code = error.code ?? '';
  if (code === '40001' || code === '40P01') return 'retry';
  if (code.startsWith('22') || code.startsWith('23')) return 'refused';
  return 'unavailable';
}

export function unavailable(message: string, cause: unknown): RevokdError {
  return new RevokdError('REVOKD_STORE_UNAVAILABLE', message, { cause });
}

export const isUnavailable = (error: unknown): boolean =>
  error instanceof RevokdError && error.code === 'REVOKD_STORE_UNAVAILABLE';

/**
 * Converts an `int8` column (the driver returns it as a string, to lose no precision) or a count to a number.
 * Every int8 revokd stores (times in ms or µs, cursors, ids) fits in a double exactly; a value that does not is
 * corrupt data, not something to round silently.
 */
export function int(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`not a safe integer: ${String(value)}`);
  return n;
}

export const intOrUndefined = (value: unknown): number | undefined =>
  value === null || value === undefined ? undefined : int(value);
