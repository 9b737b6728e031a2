import { quoteSchema, toRunQuery, validateSchemaName } from '@sagabox/core/extension';
import { type Executor } from '@sagabox/core';
import type { SagaStatus } from './saga-sql.js';

/** How many sagas of one type are in one status. */
export interface SagaCount {
  /** The saga type's name. */
  type: string;
  /** The status counted. */
  status: SagaStatus;
  /** How many sagas of the type are in the status. */
  count: number;
}

/**
 * Counts sagas by type and status: the numbers behind a dashboard's "sagas by status"
 * and a metrics gauge. One aggregate over the sagas table; fine at scrape or refresh
 * intervals, not in a hot loop.
 * @example
 * const failed = (await countSagas(pool)).filter((c) => c.status === 'failed');
 */
export async function countSagas(db: Executor, options: { schema?: string } = {}): Promise<SagaCount[]> {
  const s = quoteSchema(validateSchemaName(options.schema ?? 'sagabox'));
  const rows = await toRunQuery(db)<{ saga_type: string; status: SagaStatus; n: number }>(
    `SELECT saga_type, status, count(*)::int AS n FROM ${s}.sagas GROUP BY saga_type, status ORDER BY saga_type, status`,
    [],
  );
  return rows.map((r) => ({ type: r.saga_type, status: r.status, count: r.n }));
}
