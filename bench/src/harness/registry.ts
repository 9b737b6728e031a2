import type { SystemSelection } from './options.js';
import { graphileDrainBatched, graphileDrainDefault, graphileLatency, graphileProducer } from '../peers/graphile-worker.js';
import { pgBossDrainBatch500, pgBossDrainDefaults, pgBossDrainLoops10, pgBossLatencyNotify, pgBossLatencyPolling, pgBossProducer } from '../peers/pg-boss.js';
import { businessOnly, plainPreparedInsert, plainSecondInsert, plainUuidInsert } from '../peers/plain-sql.js';
import { loadStorageSystems } from './storage-system.js';
import type { Variant, VariantSet } from './variant.js';

/** The floors and peers of every workload, in table order. */
export function peerVariants(): VariantSet {
  return {
    w1: [businessOnly, plainSecondInsert, plainUuidInsert, plainPreparedInsert, graphileProducer, pgBossProducer],
    w2: [graphileDrainDefault, graphileDrainBatched, pgBossDrainDefaults, pgBossDrainBatch500, pgBossDrainLoops10],
    w2r: [],
    w3: [graphileLatency, pgBossLatencyPolling, pgBossLatencyNotify],
  };
}

export interface LoadedVariants {
  variants: VariantSet;
  /** Why sagabox is not in `variants`, when it was asked for and could not be loaded. */
  sagaboxSkipped?: string;
}

/**
 * Loads the variants for a selection. sagabox comes in through a dynamic import, so
 * a core that does not build yet costs the sagabox rows, not the whole run. `ids`
 * (`--variants`) keeps only the variants with those ids; an id may also name a system of
 * the storage workloads, which pick theirs in storage-system.ts.
 */
export async function loadVariants(systems: SystemSelection, ids?: readonly string[]): Promise<LoadedVariants> {
  const loaded = await loadSystems(systems);
  if (ids === undefined) return loaded;
  const storageIds = (await loadStorageSystems('all')).systems.map((s) => s.id);
  const unknown = ids.filter((id) => !storageIds.includes(id) && !Object.values(loaded.variants).some((list: Variant[]) => list.some((v) => v.id === id)));
  if (unknown.length > 0 && loaded.sagaboxSkipped === undefined) throw new Error(`--variants: no variant ${unknown.join(', ')}`);
  const pick = (list: Variant[]): Variant[] => list.filter((v) => ids.includes(v.id));
  const { w1, w2, w2r, w3 } = loaded.variants;
  return { ...loaded, variants: { w1: pick(w1), w2: pick(w2), w2r: pick(w2r), w3: pick(w3) } };
}

async function loadSystems(systems: SystemSelection): Promise<LoadedVariants> {
  const empty: VariantSet = { w1: [], w2: [], w2r: [], w3: [] };
  const peers = systems === 'sagabox' ? empty : peerVariants();
  if (systems === 'peers') return { variants: peers };
  let sagabox: VariantSet;
  try {
    const module = (await import('../sagabox/variants.js')) as { sagaboxVariants(): VariantSet };
    sagabox = module.sagaboxVariants();
  } catch (error) {
    return { variants: peers, sagaboxSkipped: `could not load the sagabox variants (${describe(error)}); run with --only peers to skip them on purpose` };
  }
  // W1 floors stay in a sagabox-only run: the ratios need them.
  const floors = systems === 'sagabox' ? [businessOnly, plainSecondInsert, plainUuidInsert, plainPreparedInsert] : [];
  return {
    variants: {
      w1: [...(systems === 'sagabox' ? floors : peers.w1), ...sagabox.w1],
      w2: [...peers.w2, ...sagabox.w2],
      w2r: [...peers.w2r, ...sagabox.w2r],
      w3: [...peers.w3, ...sagabox.w3],
    },
  };
}

export function findVariant(variants: VariantSet, workload: keyof VariantSet, id: string): Variant {
  const found = variants[workload].find((v) => v.id === id);
  if (found === undefined) throw new Error(`no ${workload} variant ${id}`);
  return found;
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message.split('\n')[0] ?? error.name;
  return String(error);
}
