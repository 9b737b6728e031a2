/**
 * Sent in a claim's transaction just before the claim: the claim is then planned as a
 * walk of its index in claim order (outbox seq, or a queue's priority and seq), which
 * stops after a batch, never as a scan and sort of every waiting row. The planner picks
 * the sort when it expects fewer claimable rows than a batch, which is what it expects of
 * a table never analysed (autovacuum off, or a backlog that arrived before its first
 * analyse), and then each claim reads the whole backlog. The order and the row locks are
 * the same either way; the only plans this rules out are the ones that sort the table.
 * Bitmap scans are off too: the outbox's head-of-key probe looks for one earlier row of
 * the key in each ring slot, and a bitmap would collect all of them first. The plan is
 * the generic one, made once per connection (and again after a rotation's TRUNCATE):
 * with `LIMIT $1` unknown the planner rates it dearer than a plan for the actual limit,
 * so it would otherwise plan the four slots afresh for every claim, which costs about
 * as much as running it.
 */
export const CLAIM_PLAN_BY_INDEX = `SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)`;

/**
 * Undoes {@link CLAIM_PLAN_BY_INDEX} for the rest of a transaction that goes on after
 * its claim (the relay's, whose destinations write through the same connection).
 */
export const CLAIM_PLAN_DONE = `SELECT set_config('enable_sort', 'on', true), set_config('enable_bitmapscan', 'on', true), set_config('plan_cache_mode', 'auto', true)`;

/**
 * {@link CLAIM_PLAN_BY_INDEX} for the worker's claims, in a transaction that ends with the
 * claim. Before PostgreSQL 18 a sort that is disabled but cannot be avoided (the limited
 * claim numbers its candidates) adds a fixed huge cost to the plan, which would pass
 * jit_above_cost and compile every claim; JIT is off for it. Sequential scans are off
 * too: the claim leases its rows by ctid in each partition of queue_messages, and in a
 * partition that looked small when the plan was made the planner prefers reading it
 * whole to fetching the rows, a plan that would be kept while a backlog fills it.
 */
export const CLAIM_PLAN_BY_INDEX_NO_JIT = `SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true), set_config('enable_seqscan', 'off', true)`;
