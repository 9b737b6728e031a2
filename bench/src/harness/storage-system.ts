/**
 * One system as the storage workloads (held snapshot, deep backlog) see it: several
 * named queues in one database, each with its own producer and consumer. The peers
 * are in peers/storage-peers.ts; sagabox comes from sagabox/storage.ts through a
 * dynamic import, as in registry.ts.
 */
import { graphileStorage, pgBossStorage } from '../peers/storage-peers.js';
import type { SystemSelection } from './options.js';
import type { Consumer, ConsumerOptions, Publisher } from './variant.js';

export interface StorageSystem {
  id: string;
  label: string;
  kind: 'sagabox' | 'peer';
  /** How it is configured, printed under the results. */
  notes: string;
  /** Schemas whose tables' dead tuples and sizes are reported. */
  schemas: string[];
  /** Installs the schema and creates the queues. */
  install(url: string, queues: readonly string[]): Promise<void>;
  /** Publishes into `queue` inside the caller's open transaction. */
  openPublisher(url: string, queue: string): Promise<Publisher>;
  /** Puts `count` ready no-op messages into `queue` (payload n from `firstN` on), fast, outside any measurement. */
  seed(url: string, queue: string, count: number, firstN: number): Promise<void>;
  /** A consumer of `queue` alone. */
  openConsumer(url: string, queue: string, options: ConsumerOptions): Promise<Consumer>;
}

/**
 * The systems of a selection, sagabox's two (direct route, outbox) first, then those of
 * `ids` alone when given; sagabox is skipped (with the reason) when its module does not load.
 */
export async function loadStorageSystems(systems: SystemSelection, ids?: readonly string[]): Promise<{ systems: StorageSystem[]; sagaboxSkipped?: string }> {
  const only = (list: StorageSystem[]) => (ids === undefined ? list : list.filter((s) => ids.includes(s.id)));
  const peers = systems === 'sagabox' ? [] : [graphileStorage, pgBossStorage];
  if (systems === 'peers') return { systems: only(peers) };
  try {
    const module = (await import('../sagabox/storage.js')) as { sagaboxStorage: StorageSystem; sagaboxOutboxStorage: StorageSystem };
    return { systems: only([module.sagaboxStorage, module.sagaboxOutboxStorage, ...peers]) };
  } catch (error) {
    return { systems: only(peers), sagaboxSkipped: error instanceof Error ? error.message.split('\n')[0] : String(error) };
  }
}

export async function findStorageSystem(id: string): Promise<StorageSystem> {
  const { systems } = await loadStorageSystems('all');
  const found = systems.find((s) => s.id === id);
  if (found === undefined) throw new Error(`no storage system ${id}`);
  return found;
}
