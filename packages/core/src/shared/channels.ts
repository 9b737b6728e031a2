/** The NOTIFY channel that wakes relays: a message entered the outbox or became deliverable. */
export function outboxChannel(schema: string): string {
  return `${schema}.outbox`;
}

/** The NOTIFY channel that wakes workers; each notification's payload names the queue. */
export function queueChannel(schema: string): string {
  return `${schema}.queue`;
}
