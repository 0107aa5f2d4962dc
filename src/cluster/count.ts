// How many workers `workers` asks for, and whether this process forks them (primary.ts) or
// serves the gateway itself.
import cluster from 'node:cluster';
import type { Config } from '../config/types.js';
import { usableCores, type CgroupFiles } from '../cpu-limit.js';

/**
 * How many processes `workers` asks for: `auto` is one per core the process may use, a
 * container's CPU limit included (`cgroup`: where to read it, for tests).
 */
export function workerCount(workers: Config['workers'], cgroup?: CgroupFiles): number {
  return workers === 'auto' ? usableCores(cgroup) : workers;
}

/** True when this process should fork workers instead of serving itself. */
export function isClusterPrimary(config: Config): boolean {
  return cluster.isPrimary && workerCount(config.workers) > 1;
}
