'use strict';
// Process deaths: kill -9 of a worker mid-call (PeerDied; restart), and a Node worker whose
// host is killed leaves on its own.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { knit, RUST_WORKER, NODE_WORKER, u64le, waitGone } = require('./helpers');

for (const [kind, command] of [['Rust', [RUST_WORKER]], ['Node', NODE_WORKER]]) {
  test(`kill -9 of a ${kind} worker mid-call fails the call with PeerDied and the pool restarts it`, async () => {
    const pool = await knit.pool({ command, restart: true });
    try {
      const { pid } = pool.worker(1);
      const call = pool.call.sleep_ms(u64le(10000));
      setTimeout(() => process.kill(pid, 'SIGKILL'), 100);
      await assert.rejects(call, knit.PeerDied);
      assert.equal(await pool.call.hello('again'), 'Hello, again');
      const w = pool.worker(1);
      assert.equal(w.starts, 2);
      assert.notEqual(w.pid, pid);
    } finally {
      await pool.close();
    }
  });
}

test('a Node worker exits when its host is killed', async () => {
  const lib = require.resolve(process.env.KNIT_NODE_PACKAGE || '../lib');
  const script = `
    const knit = require(${JSON.stringify(lib)});
    knit.pool({ command: ${JSON.stringify(NODE_WORKER)} }).then((pool) => {
      console.log(pool.worker(1).pid);
      setInterval(() => {}, 1000);
    });`;
  const host = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise((resolve, reject) => {
    host.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    host.once('exit', () => reject(new Error('the host exited early')));
  });
  assert.ok(pid > 0);
  host.kill('SIGKILL');
  assert.ok(await waitGone(pid, 15000), `worker ${pid} outlived its host`);
});
