// Soak (`npm run bench:soak`, or BENCH_SOAK=1 with `npm run bench`): socksgate pinned to
// core 0 holds ~10 000 relayed connections, then 60 s of churn runs beside them (50
// concurrent connections echoing 1..64 KiB of noise, compared byte for byte); then the
// held ones echo again and close. Reported: RSS per connection, event-loop lag p99 over
// the churn, every mismatch, and the gateway's handles and open connections against
// their baseline, all read from its own /metrics as production would.
//
// Env: BENCH_SOAK_CONNECTIONS (default 10 000 or what the descriptor limit allows),
// BENCH_SOAK_SECONDS (churn, default 60).
import { fmt } from './lib.js';
import { buildLoadgen, Loadgen } from './loadgen.js';
import { NOFILE, startGatewayProcess, treeRssKiB } from './processes.js';
import { LAG_SAMPLING_MS, lagP99, sample, scrape } from './report.js';

/** Two sockets per relayed connection and the churn's 100 under the hard descriptor limit. */
const HELD = Number(process.env.BENCH_SOAK_CONNECTIONS ?? Math.min(10_000, Math.floor((NOFILE - 400) / 200) * 100));
const CHURN_SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 60);

interface Gauges {
  handles: number;
  active: number;
}

async function gauges(metricsPort: number): Promise<Gauges> {
  const text = await scrape(metricsPort);
  return {
    handles: sample(text, 'socksgate_nodejs_active_handles_total') ?? NaN,
    active: sample(text, 'socksgate_connections_active') ?? NaN,
  };
}

/**
 * The gateway at rest, for the baseline: no open connection, and the same handle count on two
 * reads in a row (bounded). Read once as soon as nothing is open, handles still closing after
 * the warm-up would count in it, and the leak check afterwards would let as many pass.
 */
async function atRest(metricsPort: number, ms: number): Promise<Gauges> {
  let g = await gauges(metricsPort);
  for (let waited = 0; waited < ms; waited += 250) {
    await new Promise((r) => setTimeout(r, 250));
    const again = await gauges(metricsPort);
    const steady = g.active === 0 && again.active === 0 && again.handles === g.handles;
    g = again;
    if (steady) break;
  }
  return g;
}

/** Polls until the gateway's open connections and handles are back at `base` (bounded). */
async function settled(metricsPort: number, base: Gauges, ms: number): Promise<Gauges> {
  let g = await gauges(metricsPort);
  for (let waited = 0; waited < ms && (g.active > 0 || g.handles > base.handles); waited += 250) {
    await new Promise((r) => setTimeout(r, 250));
    g = await gauges(metricsPort);
  }
  return g;
}

export async function run(): Promise<void> {
  const lg = new Loadgen(await buildLoadgen());
  const targets = await lg.serve();
  const gw = await startGatewayProcess().catch((err: unknown) => {
    targets.stop();
    throw err;
  });
  const via = { kind: gw.kind, port: gw.port };
  const metricsPort = gw.metricsPort!;
  let failed = false;
  let holding: { stop(): void } | undefined;
  try {
    await lg.run(['churn', via.kind, via.port, targets.ports.echo, 50, 2], 60_000); // warm-up: JIT, pools
    const base = await atRest(metricsPort, 10_000);
    const rss0 = await treeRssKiB(gw.pid);
    console.log(`baseline: ${base.handles} handles, ${base.active} open connections, RSS ${fmt(rss0 / 1024, 1)} MiB`);

    const h = await lg.hold(via, targets.ports.echo, HELD);
    holding = h;
    await new Promise((r) => setTimeout(r, 1_000));
    const rss1 = await treeRssKiB(gw.pid);
    const open = await gauges(metricsPort);
    console.log(
      `held: ${h.held.held} relayed connections (${h.held.errors} failed, ${h.held.mismatches} mismatched), gateway reports ${open.active} open; ` +
        `RSS ${fmt(rss1 / 1024, 1)} MiB, ${fmt((rss1 - rss0) / h.held.held!, 1)} KiB per connection`,
    );

    await lagP99(metricsPort); // resets the lag histogram
    const churn = await lg.run(['churn', via.kind, via.port, targets.ports.echo, 50, CHURN_SECONDS], CHURN_SECONDS * 1000 + 120_000);
    const lag = await lagP99(metricsPort);
    console.log(
      `churn beside them, ${CHURN_SECONDS} s: ${fmt(churn.cycles!, 0)} transfers of 1..64 KiB (${fmt(churn.per_s!, 0)}/s), ` +
        `${churn.errors} failed, ${churn.mismatches} not byte-identical, ${churn.unfinished} unfinished; event-loop lag p99 ${fmt(lag.lag, 1)} ms past the ${LAG_SAMPLING_MS} ms sampling (the metric read ${fmt(lag.raw, 1)} ms)`,
    );

    const after = await h.release();
    console.log(`held ones released: ${after.verified} echoed byte-identical and closed, ${after.errors} failed, ${after.mismatches} mismatched`);
    const end = await settled(metricsPort, base, 20_000);
    const rss2 = await treeRssKiB(gw.pid);
    console.log(
      `afterwards: ${end.handles} handles (baseline ${base.handles}), ${end.active} open connections ` +
        `(${end.handles <= base.handles && end.active === 0 ? 'back at baseline' : 'NOT back at baseline'}); ` +
        `RSS ${fmt(rss2 / 1024, 1)} MiB (V8's heap and malloc keep the size they grew to)`,
    );
    // Failed transfers and connections not held fail the soak as mismatches do: the claim is
    // that every connection was held, and every transfer came back byte-identical.
    failed =
      h.held.held !== HELD ||
      h.held.errors! > 0 ||
      h.held.mismatches! > 0 ||
      churn.errors! > 0 ||
      churn.mismatches! > 0 ||
      churn.unfinished! > 0 ||
      after.verified !== h.held.held ||
      after.errors! > 0 ||
      after.mismatches! > 0 ||
      end.handles > base.handles ||
      end.active !== 0;
  } finally {
    holding?.stop();
    await gw.stop();
    targets.stop();
  }
  if (failed) {
    console.log('soak: FAILED (see above)');
    process.exitCode = 1;
  }
}
