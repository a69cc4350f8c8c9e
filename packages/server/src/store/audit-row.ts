import type { AuditEvent } from './port.ts';

/** The audit table's columns, in the order of {@link auditRow} (the same in both stores). */
export const AUDIT_COLUMNS = 'at_ms, type, actor, subject, client_id, sid, jti, reason, detail';

/** An audit event as the values of its row, in {@link AUDIT_COLUMNS} order, its detail serialised as JSON. */
export type AuditRow = readonly [number, string, string, ...Array<string | null>];

/** Serialises now, so an event that cannot be stored (its detail is not JSON) fails the write that records it. */
export function auditRow(e: AuditEvent): AuditRow {
  const detail = e.detail === undefined ? null : JSON.stringify(e.detail);
  return [
    e.atMs,
    e.type,
    e.actor,
    e.subject ?? null,
    e.clientId ?? null,
    e.sid ?? null,
    e.jti ?? null,
    e.reason ?? null,
    detail,
  ];
}
