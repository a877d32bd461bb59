#!/usr/bin/env node
'use strict';
// The conformance agent of the Node.js binding: answers the driver protocol of
// conformance/README.md (length-prefixed JSON frames on stdin/stdout) with this package over
// libknit.
//
//   knit conformance --agent "node bindings/node/knit-agent.js"
//
// Capabilities (as the Python agent's): serve as a worker of a region the runner created
// (`worker`; `channels`: a handler draining the host's channel), host a region whose workers
// the runner or another agent starts (`host`: `host_*`, `call`, `call_batch`,
// `host_channel_call`, through a pool of external workers, `knit.pool({external: true})`),
// start itself as a worker process the way a host does (`spawn`), run its own host with thread
// or process workers (`pool`), validate region images through libknit's attach and typed
// arrays with the binding's own decoder (`validate.region`, `validate.typed_array`), and count
// its resources (`stats`). Raw peers (`raw_*`), the host commands that need byte-level control
// of a ring, and the validation of rings, participant entries and function tables have no
// counterpart in the C interface: those answer `skipped`.
const fs = require('fs');
const crypto = require('crypto');
const { spawn } = require('child_process');
const knit = require('./lib');
const native = require('./lib/native');
const payloadCodec = require('./lib/payload');

const SERVE_FLAG = '--serve-from-env';
const FUNCTIONS_ENV = 'KNIT_AGENT_FUNCTIONS';
const BEHAVIOURS = ['echo', 'checksum', 'fail', 'sleep', 'generate', 'drain'];
const CAPABILITIES = ['validate.region', 'validate.typed_array', 'worker', 'host', 'channels', 'spawn', 'pool', 'stats'];
const STATE_NAMES = ['EMPTY', 'RESERVED', 'ATTACHING', 'ACTIVE', 'DETACHED', 'DEAD'];
// The attach timeout of a claimed entry (PART-11) when the runner gives none: a worker is
// ATTACHING for microseconds, so a second is generous and keeps liveness cases in bounds.
const ATTACH_TIMEOUT_MS = 1000;
const MAX_FRAME = 16 * 1024 * 1024;
const MASK = (1n << 64n) - 1n;

// --- payloads (README §3.1) ----------------------------------------------------------------

/** SplitMix64 words of `seed`, little-endian, the first `len` bytes. */
function payload(seed, len) {
  const words = Math.ceil(len / 8);
  const out = Buffer.alloc(words * 8);
  let s = BigInt.asUintN(64, BigInt(seed));
  for (let i = 0; i < words; i++) {
    s = (s + 0x9e3779b97f4a7c15n) & MASK;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    out.writeBigUInt64LE(z ^ (z >> 31n), 8 * i);
  }
  return out.subarray(0, len);
}

/** FNV-1a 64 over every byte, as [hi, lo] 32-bit halves (BigInt per byte is too slow). */
function fnv1a(bytes) {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < bytes.length; i++) {
    lo = (lo ^ bytes[i]) >>> 0;
    // (hi:lo) * 0x100000001b3 mod 2^64 = (hi:lo) * 0x1b3 + (lo << 40)
    const lLo = (lo & 0xffff) * 0x1b3;
    const lHi = (lo >>> 16) * 0x1b3 + Math.floor(lLo / 0x10000);
    const newHi = (Math.imul(hi, 0x1b3) + Math.floor(lHi / 0x10000) + (lo << 8)) >>> 0;
    lo = (((lHi & 0xffff) << 16) | (lLo & 0xffff)) >>> 0;
    hi = newHi;
  }
  return [hi, lo];
}

function digest(bytes) {
  const [hi, lo] = fnv1a(bytes);
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/** README §3.6: `min_len + (payload(seed + i, 8) as u64 LE) mod (max_len - min_len + 1)`. */
function batchLen(seed, i, lo, hi) {
  const word = payload(BigInt.asUintN(64, BigInt(seed) + BigInt(i)), 8).readBigUInt64LE(0);
  return lo + Number(word % BigInt(Math.max(hi - lo, 0) + 1));
}

/** One entry of a batch digest: `i` (u64 LE) and the 8 bytes of the digest of `bytes`. */
function foldEntry(i, bytes) {
  const entry = Buffer.alloc(16);
  entry.writeBigUInt64LE(BigInt(i), 0);
  Buffer.from(digest(bytes), 'hex').copy(entry, 8);
  return entry;
}

// --- built-in behaviours (README §3.2) as raw handlers -------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function behaviour(spec) {
  const kind = spec.behaviour ?? spec.name;
  if (!BEHAVIOURS.includes(kind)) throw new RangeError(`unknown behaviour ${kind}`);
  const ms = Number(spec.ms ?? 0);
  const code = Number(spec.code ?? 2);
  const echo = (ctx) => new knit.Payload(Buffer.from(ctx.payload), ctx.contentType);
  const fns = {
    echo,
    checksum: (ctx) => {
      const [hi, lo] = fnv1a(ctx.payload);
      const out = Buffer.alloc(8);
      out.writeUInt32LE(lo, 0);
      out.writeUInt32LE(hi, 4);
      return out;
    },
    fail: () => {
      throw knit.errorFor(code, 'fail');
    },
    sleep: async (ctx) => {
      const copy = echo(ctx); // the payload view is valid only until the handler settles
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (ctx.signal.aborted) throw new knit.Cancelled('cancelled while sleeping');
        // eslint-disable-next-line no-await-in-loop
        await sleep(1);
      }
      return copy;
    },
    generate: (ctx) => {
      if (ctx.payload.length < 16) throw new knit.InvalidArgument('generate needs seed and len');
      return payload(ctx.payload.readBigUInt64LE(0), Number(ctx.payload.readBigUInt64LE(8)));
    },
    // Every message of the host's channel until its end, folded into the batch digest of
    // README §3.6; a receive error (CHANNEL_ABORTED, PEER_DIED, ...) is the call's status.
    drain: async (ctx) => {
      const rx = await ctx.takeChannel();
      const folded = [];
      for (let i = 0; ; i++) {
        let m;
        try {
          // eslint-disable-next-line no-await-in-loop
          m = await rx.recvRaw();
        } catch (e) {
          if (e instanceof knit.ChannelClosed) break;
          throw e;
        }
        folded.push(foldEntry(i, m.data));
      }
      return new knit.Payload(Buffer.from(digest(Buffer.concat(folded))), knit.UTF8);
    },
  };
  return fns[kind];
}

function handlers(specs) {
  if (!Array.isArray(specs)) throw new BadCommand('functions must be a list');
  const out = new Map();
  for (const f of specs) out.set(String(f.name), knit.handler(behaviour(f), { raw: true }));
  return out;
}

// --- replies ---------------------------------------------------------------------------------

class BadCommand extends Error {}

const ok = (results = {}) => ({ status: 'ok', ...results });

/** The registry name, or the decimal number for a code outside the registry (CALL-7). */
function classOf(code) {
  const name = native.statusName(code);
  return name === 'APPLICATION' || name === 'UNKNOWN' ? String(code) : name;
}

const error = (code, detail) => ({ status: 'error', class: classOf(code), code, detail });
const skipped = (reason) => ({ status: 'skipped', reason });

function failure(e) {
  if (e instanceof knit.KnitError) return error(e.code, e.message);
  return error(11, `${e && e.name}: ${e && e.message}`);
}

function arg(c, key, type) {
  const v = c[key];
  if (typeof v !== type || (type === 'number' && !Number.isInteger(v))) throw new BadCommand(`\`${key}\` is required`);
  return v;
}

function within(promise, ms) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  return Promise.race([promise.then(() => 'done', () => 'done'), timeout]).finally(() => clearTimeout(timer));
}

// --- the agent -------------------------------------------------------------------------------

class Agent {
  constructor() {
    this.images = new Map();
    this.serves = [];
    this.spawned = null;
    this.pool = null;
    this.host = null;
  }

  async handle(c) {
    const cmd = c.cmd;
    const method = typeof cmd === 'string' ? this[`cmd_${cmd}`] : undefined;
    if (!method) {
      if (typeof cmd === 'string' && /^(host_|raw_|channel_)/.test(cmd)) {
        return skipped(`${cmd}: the C interface that the Node.js binding uses has none`);
      }
      return error(11, `unknown command ${JSON.stringify(cmd)}`);
    }
    try {
      return await method.call(this, c);
    } catch (e) {
      if (e instanceof BadCommand) return error(11, e.message);
      if (e instanceof knit.KnitError) return /^(host_|call)/.test(cmd) ? this.hostFailure(e) : failure(e);
      return error(11, `${e.name}: ${e.message}`);
    }
  }

  cmd_hello() {
    const version = require('./package.json').version; // eslint-disable-line global-require
    return ok({ name: 'knit-node', version, spec_versions: ['1.0'], capabilities: CAPABILITIES });
  }

  cmd_put_image(c) {
    const hex = arg(c, 'hex', 'string');
    if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new BadCommand('hex: not an even run of hex digits');
    this.images.set(arg(c, 'name', 'string'), Buffer.from(hex, 'hex'));
    return ok();
  }

  cmd_validate(c) {
    const kind = arg(c, 'kind', 'string');
    const stored = this.images.get(arg(c, 'image', 'string'));
    if (!stored) throw new BadCommand('no such image');
    let image = Buffer.from(stored);
    for (const patch of c.patches || []) {
      if (!Array.isArray(patch) || patch.length !== 2 || !Number.isInteger(patch[0]) || typeof patch[1] !== 'string') {
        throw new BadCommand('a patch is [offset, hex]');
      }
      const [offset, hex] = patch;
      if (offset < 0 || offset > 1 << 30) throw new BadCommand('patch offset out of range');
      const data = Buffer.from(hex, 'hex');
      if (offset + data.length > image.length) image = Buffer.concat([image, Buffer.alloc(offset + data.length - image.length)]);
      data.copy(image, offset);
    }
    if (kind === 'region') return this.validateRegion(image);
    if (kind === 'typed_array') {
      try {
        const { dtype, shape } = payloadCodec.parseTypedArray(image);
        return ok({ verdict: 'valid', dtype: dtype.code, shape: shape.map(String) });
      } catch (e) {
        if (e instanceof knit.KnitError) return ok({ verdict: 'invalid', class: classOf(e.code), detail: e.message });
        throw e;
      }
    }
    return skipped(`validate ${kind}: the C interface has no decoder for it`);
  }

  // The image becomes a named object (MAP-2 name, 0600) that libknit attaches to with a single
  // look at init_state: its checks, in HDR-9 order, are the verdict.
  validateRegion(image) {
    const name = `knit-${crypto.randomBytes(16).toString('hex')}`;
    const path = `/dev/shm/${name}`;
    const fd = fs.openSync(path, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.writeSync(fd, image);
      fs.closeSync(fd);
      try {
        const info = native.regionInfo(name, 0);
        return ok({ verdict: 'valid', region_len: String(info.regionLen) });
      } catch (e) {
        if (e instanceof knit.KnitError) return ok({ verdict: 'invalid', class: classOf(e.code), detail: e.message });
        throw e;
      }
    } finally {
      fs.rmSync(path, { force: true });
    }
  }

  cmd_serve(c) {
    const region = arg(c, 'region', 'string');
    const slot = arg(c, 'slot', 'number');
    const fns = handlers(c.functions);
    const entry = { outcome: undefined, done: null };
    entry.done = knit.serve(fns, { region, slot, spin: c.spin === 'none' ? 'none' : undefined }).then(
      () => {
        entry.outcome = null;
      },
      (e) => {
        entry.outcome = e;
      },
    );
    this.serves.push(entry);
    return ok();
  }

  async cmd_wait_worker(c) {
    const entry = this.serves[this.serves.length - 1];
    if (!entry) return error(11, 'no worker');
    if ((await within(entry.done, c.timeout_ms ?? 5000)) === 'timeout') return error(14, 'the worker still runs');
    return entry.outcome === null ? ok({ outcome: 'shutdown' }) : failure(entry.outcome);
  }

  cmd_spawn_worker(c) {
    const region = arg(c, 'region', 'string');
    const slot = String(c.slot ?? 1);
    const argv = [__filename, SERVE_FLAG];
    const env = { ...process.env };
    if (c.via === 'args') argv.push('--knit-region', region, '--knit-slot', slot);
    else Object.assign(env, { KNIT_REGION: region, KNIT_SLOT: slot });
    const child = spawn(process.execPath, argv, { env, stdio: ['ignore', 'ignore', 'inherit'] });
    const entry = { child, code: undefined };
    entry.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        entry.code = code ?? (signal ? 128 : -1);
        resolve();
      });
    });
    this.spawned = entry;
    return ok({ pid: child.pid });
  }

  async cmd_wait_spawned(c) {
    const entry = this.spawned;
    if (!entry) return error(11, 'no spawned worker');
    if ((await within(entry.exited, c.timeout_ms ?? 5000)) === 'timeout') return error(14, 'the worker process still runs');
    this.spawned = null;
    return ok({ exit_code: entry.code });
  }

  async cmd_pool_start(c) {
    const specs = c.functions;
    const fns = handlers(specs); // checks the list before anything starts
    const options = { workers: Number(c.workers ?? 1) };
    if (c.max_message_len !== undefined) options.maxMessageLen = Number(c.max_message_len);
    if (c.restart !== undefined) options.restart = Boolean(c.restart);
    if (c.process) {
      options.command = [process.execPath, __filename, SERVE_FLAG];
      options.env = { [FUNCTIONS_ENV]: JSON.stringify(specs) };
    } else {
      options.handlers = fns;
    }
    const pool = await knit.pool(options);
    if (this.pool) await this.pool.close();
    this.pool = pool;
    return ok({ region: pool.info().name });
  }

  async cmd_pool_call(c) {
    if (!this.pool) return error(11, 'no pool: pool_start first');
    const body = payload(c.seed ?? 0, Number(c.len ?? 0));
    const options = c.deadline_ms === undefined ? {} : { deadline: Number(c.deadline_ms) };
    const r = await this.pool.callRaw(arg(c, 'function', 'string'), body, options);
    return ok({ content_type: r.contentType, len: r.data.length, digest: digest(r.data) });
  }

  cmd_pool_workers() {
    if (!this.pool) return error(11, 'no pool: pool_start first');
    const workers = this.pool.workers().map((w) => ({ index: w.index, ready: w.ready, dead: w.dead, starts: w.starts, pid: w.pid }));
    return ok({ workers });
  }

  async cmd_pool_stop() {
    if (this.pool) {
      await this.pool.close();
      this.pool = null;
    }
    return ok();
  }

  // -- host (README §3.6): a pool of external workers ---------------------------------------

  async cmd_host_create(c) {
    const p = c.params && typeof c.params === 'object' ? c.params : {};
    const get = (key, fallback) => Number(p[key] ?? fallback); // u64 values may be strings
    const channelSlots = get('channel_slots', 1);
    const pool = await knit.pool({
      workers: get('worker_slots', 1),
      external: true,
      channels: channelSlots,
      channelRing: channelSlots ? get('channel_ring_cap', 4096) : undefined,
      inflight: get('inflight_max', 4),
      ringSize: [get('request_ring_cap', 4096), get('response_ring_cap', 4096)],
      maxMessageLen: get('max_message_len', 1 << 20),
      startTimeout: ATTACH_TIMEOUT_MS,
    });
    await this.closeHost();
    this.host = pool;
    return ok({ region: pool.info().name });
  }

  // README §3.6: a call ends with "the violation the host found". The pool poisons the region
  // with it (ERR-2) and fails its calls with POISONED; when the finder is this host
  // (participant 0, stored as 1), the violation is the region's poison code.
  hostFailure(e) {
    if (e instanceof knit.Poisoned && this.host) {
      try {
        const info = this.host.info();
        if (info.poisonedBy === 1 && info.poisonCode !== 0 && info.poisonCode !== e.code) return error(info.poisonCode, e.message);
      } catch {
        // the pool is gone: the failure as it is
      }
    }
    return failure(e);
  }

  hostPool() {
    if (!this.host) throw new BadCommand('no region: host_create first');
    return this.host;
  }

  cmd_host_reserve(c) {
    return ok({ epoch: this.hostPool().reserveWorker(arg(c, 'slot', 'number')) });
  }

  async cmd_host_wait_hello(c) {
    const pool = this.hostPool();
    const slot = arg(c, 'slot', 'number');
    let timeout = Number(c.timeout_ms ?? 5000);
    // LIVE-2 as the runner's reference host applies it: an entry that nobody claimed, or whose
    // claim never became ACTIVE, within the attach timeout is a worker that never came. The
    // pool times out a claimed entry itself (PART-11); an unclaimed one it would wait for, so
    // the agent takes the reservation back (PART-12).
    const attach = c.attach_timeout_ms;
    if (attach !== undefined && attach < timeout) {
      try {
        return ok({ functions: await pool.waitWorker(slot, attach) });
      } catch (e) {
        if (!(e instanceof knit.TimedOut)) throw e;
        if (STATE_NAMES[pool.participant(slot).state] === 'RESERVED') {
          await pool.releaseWorker(slot, 0).catch(() => {});
          return error(knit.PeerDied.code, 'no worker attached within the attach timeout');
        }
        timeout -= attach;
      }
    }
    return ok({ functions: await pool.waitWorker(slot, timeout) });
  }

  async cmd_call(c) {
    const pool = this.hostPool();
    const slot = arg(c, 'slot', 'number');
    const body = payload(c.seed ?? 0, Number(c.len ?? 0));
    const options = { worker: slot, contentType: Number(c.content_type ?? knit.BYTES) };
    if (c.deadline_ms !== undefined) options.deadline = Number(c.deadline_ms);
    let timer;
    if (c.cancel_after_ms !== undefined) {
      // CANCEL-1: the outcome is CANCELLED unless it came first.
      const ac = new AbortController();
      options.signal = ac.signal;
      timer = setTimeout(() => ac.abort(), Number(c.cancel_after_ms));
    }
    try {
      const r = await pool.callRaw(arg(c, 'function', 'string'), new knit.Payload(body, options.contentType), options);
      return ok({ content_type: r.contentType, len: r.data.length, digest: digest(r.data) });
    } finally {
      clearTimeout(timer);
    }
  }

  async cmd_call_batch(c) {
    const pool = this.hostPool();
    const slot = arg(c, 'slot', 'number');
    const fn = arg(c, 'function', 'string');
    const count = Number(c.count ?? 0);
    const seed = BigInt(c.seed ?? 0);
    const lo = Number(c.min_len ?? 0);
    const hi = Number(c.max_len ?? 0);
    const window = Math.max(1, Number(c.window ?? 1));
    const results = new Array(count);
    const inFlight = new Set();
    let failed = null;
    for (let i = 0; i < count && !failed; i++) {
      while (inFlight.size >= window && !failed) {
        // eslint-disable-next-line no-await-in-loop
        await Promise.race(inFlight);
      }
      if (failed) break;
      const body = payload(BigInt.asUintN(64, seed + BigInt(i)), batchLen(seed, i, lo, hi));
      const call = pool.callRaw(fn, body, { worker: slot }).then(
        (r) => {
          results[i] = foldEntry(i, r.data);
        },
        (e) => {
          failed = failed || e;
        },
      );
      const tracked = call.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    }
    await Promise.all(inFlight);
    if (failed) throw failed;
    return ok({ count, digest: digest(Buffer.concat(results)) });
  }

  async cmd_host_channel_call(c) {
    const pool = this.hostPool();
    const slot = arg(c, 'slot', 'number');
    if (pool.info().workerSlots !== 1 || slot !== 1) return skipped('a channel call pinned to one of several workers has no C function');
    for (const extra of ['garbage_state', 'announce_twice']) {
      if (c[extra]) return skipped(`${extra}: a pool announces its channels correctly`);
    }
    const count = Number(c.count ?? 10);
    const seed = BigInt(c.seed ?? 0);
    const lo = Number(c.min_len ?? 0);
    const hi = Number(c.max_len ?? 64);
    const pause = Number(c.pause_ms ?? 0);
    const abortAfter = c.abort_after;
    const folded = [];
    let senderError = null;
    const { sender, result } = pool.callWithChannel('drain', Buffer.alloc(0));
    try {
      let aborted = false;
      for (let i = 0; i < count; i++) {
        if (abortAfter === i) {
          // eslint-disable-next-line no-await-in-loop
          await sender.abort(Number(c.abort_code ?? 4000));
          aborted = true;
          break;
        }
        const body = payload(BigInt.asUintN(64, seed + BigInt(i)), batchLen(seed, i, lo, hi));
        folded.push(foldEntry(i, body));
        // eslint-disable-next-line no-await-in-loop
        await sender.send(new knit.Payload(body, knit.BYTES));
        // eslint-disable-next-line no-await-in-loop
        if (pause) await sleep(pause);
      }
      if (!aborted) await sender.close();
    } catch (e) {
      if (!(e instanceof knit.KnitError)) throw e;
      senderError = failure(e);
      await sender.abort().catch(() => {});
    }
    let reply;
    try {
      const r = await result;
      const data = r instanceof knit.Payload ? r.data : Buffer.from(typeof r === 'string' ? r : '');
      reply = ok({ content_type: knit.UTF8, len: data.length, digest: digest(data) });
      if (data.length <= 64) reply.text = data.toString('utf8');
    } catch (e) {
      if (!(e instanceof knit.KnitError)) throw e;
      reply = failure(e);
    }
    reply.verified = reply.text === digest(Buffer.concat(folded));
    if (senderError) reply.sender = senderError;
    return reply;
  }

  async cmd_host_shutdown(c) {
    const entry = await this.hostPool().releaseWorker(arg(c, 'slot', 'number'), Number(c.timeout_ms ?? 5000));
    return ok({ state: STATE_NAMES[entry.state], epoch: entry.epoch });
  }

  cmd_host_state(c) {
    const entry = this.hostPool().participant(arg(c, 'slot', 'number'));
    return ok({ state: STATE_NAMES[entry.state], epoch: entry.epoch });
  }

  async cmd_host_close() {
    await this.closeHost();
    return ok();
  }

  async closeHost() {
    if (this.host) {
      const host = this.host;
      this.host = null;
      await host.close();
    }
  }

  cmd_stats() {
    const fds = fs.readdirSync('/proc/self/fd').length;
    const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n');
    const mappings = maps.filter((l) => l.includes('/dev/shm/knit-') || l.includes('memfd:knit')).length;
    const status = fs.readFileSync('/proc/self/status', 'utf8').match(/^Threads:\s+(\d+)/m);
    return ok({ fds, mappings, threads: status ? Number(status[1]) : 0 });
  }

  async cmd_reset() {
    await this.reset();
    return ok();
  }

  cmd_exit() {
    return ok();
  }

  async reset() {
    await this.closeHost();
    if (this.pool) {
      await this.pool.close();
      this.pool = null;
    }
    if (this.spawned) {
      this.spawned.child.kill('SIGKILL');
      await this.spawned.exited;
      this.spawned = null;
    }
    // A worker ends on SHUTDOWN, its host's death or poisoning; the C interface cannot stop
    // one from outside, so one still serving is left to its host.
    await Promise.all(this.serves.map((s) => within(s.done, 2000)));
    this.serves = this.serves.filter((s) => s.outcome === undefined);
  }
}

// --- framing (README §2) ---------------------------------------------------------------------

function writeFrame(reply) {
  const body = Buffer.from(JSON.stringify(reply), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32LE(body.length);
  const frame = Buffer.concat([head, body]);
  for (let off = 0; off < frame.length; ) off += fs.writeSync(frames, frame, off);
}

// stdout carries frames only: keep a private descriptor for them and send every other
// output of this process (console.log, libknit messages) to stderr.
let frames = 1;

function serveFromEnv() {
  const specs = JSON.parse(process.env[FUNCTIONS_ENV] || '[{"name": "echo"}]');
  knit.serve(handlers(specs)).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`knit-agent worker: ${e.name}: ${e.message}\n`);
      process.exit(1);
    },
  );
}

function main() {
  // eslint-disable-next-line no-console
  console.log = console.error;
  const agent = new Agent();
  let pending = Buffer.alloc(0);
  let chain = Promise.resolve();
  let exiting = false;
  const finish = () => {
    if (exiting) return;
    exiting = true;
    chain = chain.then(() => agent.reset()).finally(() => process.exit(0));
  };
  process.stdin.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && !exiting) {
      const n = pending.readUInt32LE(0);
      if (n < 1 || n > MAX_FRAME) {
        process.stderr.write(`knit-agent: frame length ${n} out of range\n`);
        finish();
        return;
      }
      if (pending.length < 4 + n) break;
      const body = pending.subarray(4, 4 + n);
      pending = pending.subarray(4 + n);
      let command = null;
      try {
        command = JSON.parse(body.toString('utf8'));
        if (!command || typeof command !== 'object' || Array.isArray(command)) throw new SyntaxError('a command is a JSON object');
      } catch (e) {
        const id = command && typeof command === 'object' ? command.id : null;
        chain = chain.then(() => writeFrame({ ...error(11, `malformed command: ${e.message}`), id: id ?? null }));
        continue;
      }
      const c = command;
      chain = chain.then(async () => {
        const reply = await agent.handle(c);
        reply.id = c.id ?? null;
        writeFrame(reply);
      });
      if (c.cmd === 'exit') finish();
    }
  });
  process.stdin.on('end', finish);
}

if (process.argv.includes(SERVE_FLAG)) {
  serveFromEnv();
} else {
  frames = fs.openSync('/proc/self/fd/1', 'w');
  fs.closeSync(1);
  fs.openSync('/proc/self/fd/2', 'w'); // takes descriptor 1: stdout now goes to stderr
  main();
}
