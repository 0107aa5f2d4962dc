// How many cores `workers: auto` may use. os.availableParallelism() reads the CPU affinity
// mask only (libuv before 1.49; Node 20 bundles 1.46): in a container given `--cpus 2` or a
// Kubernetes CPU limit (a cgroup CPU quota) on a 64-core host it says 64, and `auto` would
// fork 64 workers into two cores' worth of time and the container's memory limit.

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/** Where the cgroup files are: the cgroup mount, and this process's membership (/proc/self/cgroup). */
export interface CgroupFiles {
  root: string;
  self: string;
}

const SYSTEM: CgroupFiles = { root: '/sys/fs/cgroup', self: '/proc/self/cgroup' };

/** The cores this process may use: its affinity mask, bounded by its cgroup's CPU quota. */
export function usableCores(files: CgroupFiles = SYSTEM): number {
  const cores = availableParallelism();
  const quota = cgroupCpuQuota(files);
  return quota === undefined ? cores : Math.min(cores, quota);
}

/**
 * Whole cores the cgroup CPU quota allows (quota / period, rounded down, at least 1), as
 * libuv 1.49 and Rust's available_parallelism read it; undefined when there is no quota or
 * nothing can be read. The process's own cgroup first, then the mount's root: a container
 * with cgroup v1 and no cgroup namespace sees the host's path but has its own cgroup mounted.
 */
export function cgroupCpuQuota(files: CgroupFiles = SYSTEM): number | undefined {
  const membership = read(files.self);
  if (membership === undefined) return undefined;
  for (const line of membership.split('\n')) {
    const [, controllers, path] = line.match(/^\d+:([^:]*):(.*)$/) ?? [];
    if (controllers === undefined || path === undefined) continue;
    // A hybrid host lists both kinds: the one whose files are there says.
    if (controllers === '') {
      // cgroup v2: cpu.max holds "QUOTA PERIOD", or "max PERIOD" without a quota.
      const max = read(join(files.root, path, 'cpu.max')) ?? read(join(files.root, 'cpu.max'));
      if (max === undefined) continue;
      const [quota, period] = max.trim().split(/\s+/);
      return cores(Number(quota), Number(period));
    }
    if (!controllers.split(',').includes('cpu')) continue;
    // cgroup v1: cpu.cfs_quota_us is -1 without a quota.
    for (const dir of [join(files.root, controllers, path), join(files.root, 'cpu', path), join(files.root, controllers), join(files.root, 'cpu')]) {
      const quota = read(join(dir, 'cpu.cfs_quota_us'));
      if (quota !== undefined) return cores(Number(quota), Number(read(join(dir, 'cpu.cfs_period_us'))));
    }
  }
  return undefined;
}

function cores(quota: number, period: number): number | undefined {
  if (!(quota > 0) || !(period > 0)) return undefined; // "max", -1, or unreadable
  return Math.max(1, Math.floor(quota / period));
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
