// `workers: auto` on a host, in a container with a CPU limit (a cgroup quota), and without one.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { workerCount } from '../../src/cluster/count.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A cgroup mount and a /proc/self/cgroup of our own: files at their paths under `root`. */
async function cgroup(membership: string, files: Record<string, string>): Promise<{ root: string; self: string }> {
  const dir = await tempDir('cgroup');
  const root = join(dir, 'sys-fs-cgroup');
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), text);
  }
  const self = join(dir, 'proc-self-cgroup');
  await writeFile(self, membership);
  return { root, self };
}

const cores = availableParallelism();

test('auto: one worker per core the CPU quota allows, never more than the affinity mask', async () => {
  // A container given one CPU (docker --cpus 1, a Kubernetes limit of 1), cgroup v2 with its own namespace.
  assert.equal(workerCount('auto', await cgroup('0::/\n', { 'cpu.max': '100000 100000\n' })), 1);
  // 1.5 and 0.5 CPUs: whole cores, at least one.
  assert.equal(workerCount('auto', await cgroup('0::/\n', { 'cpu.max': '150000 100000\n' })), 1);
  assert.equal(workerCount('auto', await cgroup('0::/\n', { 'cpu.max': '50000 100000\n' })), 1);
  // A systemd service with CPUQuota=100%: its own cgroup's file.
  const service = await cgroup('0::/system.slice/socksgate.service\n', { 'system.slice/socksgate.service/cpu.max': '100000 100000\n', 'cpu.max': 'max 100000\n' });
  assert.equal(workerCount('auto', service), 1);
  // cgroup v1 in a container without a cgroup namespace: the host's path, the container's own mount.
  const v1 = await cgroup('12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n', { 'cpu,cpuacct/cpu.cfs_quota_us': '100000\n', 'cpu,cpuacct/cpu.cfs_period_us': '100000\n' });
  assert.equal(workerCount('auto', v1), 1);
  // More CPUs allowed than there are: the affinity mask rules.
  assert.equal(workerCount('auto', await cgroup('0::/\n', { 'cpu.max': `${(cores + 8) * 100000} 100000\n` })), cores);
});

test('auto without a quota, or with no cgroup files to read, is the affinity mask; a number is itself', async () => {
  assert.equal(workerCount('auto', await cgroup('0::/\n', { 'cpu.max': 'max 100000\n' })), cores);
  assert.equal(workerCount('auto', await cgroup('4:cpu,cpuacct:/\n', { 'cpu,cpuacct/cpu.cfs_quota_us': '-1\n', 'cpu,cpuacct/cpu.cfs_period_us': '100000\n' })), cores);
  assert.equal(workerCount('auto', await cgroup('0::/\n', {})), cores);
  assert.equal(workerCount('auto', { root: '/nonexistent', self: '/nonexistent' }), cores);
  assert.equal(workerCount(3, await cgroup('0::/\n', { 'cpu.max': '100000 100000\n' })), 3);
});
