#!/usr/bin/env node
'use strict';
// A 64 B call from Node.js into a Rust worker process over Knit, against a worker_threads
// postMessage round trip, in the same run. Prints a Markdown table and the ratio of the p50s.
//
//   node bindings/node/bench.js [--seconds S] [--size N] [--realtime]
//
// --realtime runs everything as SCHED_FIFO priority 10 (through chrt; root), inherited by the
// worker processes and threads, so that other work on a busy machine cannot take a core from
// a spinning pair.
//
// Wants release builds (scripts/build-c, `cargo build --release -p knit --bin
// knit-test-worker`, the addon rebuilt against them: `KNIT_PREFIX=target/knit-c/release
// node-gyp rebuild --nodedir=/usr` in bindings/node) and an idle machine: Knit's waiters spin
// briefly before they park, which pays off on free cores and costs time slices on busy ones.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Worker } = require('worker_threads');
const knit = require('./lib');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const SECONDS = option('--seconds', 3);
const REALTIME = args.includes('--realtime');
if (REALTIME && !process.env.KNIT_BENCH_REALTIME) {
  // eslint-disable-next-line global-require
  const r = require('child_process').spawnSync('chrt', ['-f', '10', process.execPath, __filename, ...args], {
    stdio: 'inherit',
    env: { ...process.env, KNIT_BENCH_REALTIME: '1' },
  });
  process.exit(r.status ?? 1);
}
const SIZE = option('--size', 64);
const ROOT = path.resolve(__dirname, '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const RUST_WORKER = process.env.KNIT_TEST_WORKER || path.join(TARGET, 'release', 'knit-test-worker');

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `once` (a round trip returning a Promise) back to back for `seconds` after a short
    warm-up, adding the per-call times (µs) to `times`. */
async function measure(once, seconds, times) {
  const warm = Date.now() + 100;
  while (Date.now() < warm) await once(); // eslint-disable-line no-await-in-loop
  const end = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  for (;;) {
    const t0 = process.hrtime.bigint();
    await once(); // eslint-disable-line no-await-in-loop
    const t1 = process.hrtime.bigint();
    times.push(Number(t1 - t0) / 1000);
    if (t1 >= end) break;
  }
}

/** A case: `start()` resolves to {once, stop}. */
function knitCase(name, spin, command = [RUST_WORKER]) {
  return {
    name,
    async start(data) {
      const pool = await knit.pool({ command, spin });
      return { once: () => pool.call.echo(data), stop: () => pool.close() };
    },
  };
}

const postMessageCase = {
  name: 'worker_threads postMessage round trip',
  async start(data) {
    const worker = new Worker("const { parentPort } = require('worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(m));", { eval: true });
    let resolve;
    worker.on('message', () => resolve());
    await new Promise((r) => worker.once('online', r));
    return {
      once: () => new Promise((r) => {
        resolve = r;
        worker.postMessage(data);
      }),
      stop: () => worker.terminate(),
    };
  },
};

function libknitPath() {
  const line = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.includes('libknit.so'));
  return line ? line.slice(line.indexOf('/')) : '?';
}

const ROUNDS = 3;

async function main() {
  const data = Buffer.alloc(SIZE, 7);
  const cases = [
    knitCase('knit → Rust worker process (spin balanced)', 'balanced'),
    postMessageCase,
    knitCase('knit → Rust worker process (host parks at once)', 'none'),
    knitCase('knit → Node.js worker process', 'balanced', [process.execPath, path.join(__dirname, 'test', 'node_worker.js')]),
  ];
  const running = [];
  for (const c of cases) running.push(await c.start(data)); // eslint-disable-line no-await-in-loop
  const times = cases.map(() => []);
  // Rounds of every case in turn, so that a change in the machine's load touches all alike.
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < cases.length; i++) await measure(running[i].once, SECONDS / ROUNDS, times[i]); // eslint-disable-line no-await-in-loop
  }
  for (const run of running) await run.stop(); // eslint-disable-line no-await-in-loop
  const rows = cases.map((c, i) => {
    const t = times[i].sort((a, b) => a - b);
    return { name: c.name, p50: percentile(t, 50), p99: percentile(t, 99), n: t.length };
  });
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0].model}), load ${load}`);
  console.log(`libknit ${knit.version()} from ${libknitPath()}; worker ${RUST_WORKER}`);
  console.log(`${SIZE} B payload, ${SECONDS} s per case in ${ROUNDS} rounds, sequential awaited round trips, ${REALTIME ? 'SCHED_FIFO priority 10' : 'SCHED_OTHER'}\n`);
  console.log('| case | p50 µs | p99 µs | calls |');
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.n} |`);
  const pm = rows[1];
  console.log('');
  for (const r of rows.filter((x) => x !== pm)) {
    console.log(`${r.name}: ${(pm.p50 / r.p50).toFixed(2)}x the speed of postMessage (p50), ${(pm.p99 / r.p99).toFixed(2)}x (p99)`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
