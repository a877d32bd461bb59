// Type-checked by `tsc --noEmit` (scripts/test-node): the declarations describe the API the
// tests use. Not run.
import * as knit from '../index';

async function host(): Promise<void> {
  const pool: knit.Pool = await knit.pool({ workers: 4, command: ['./worker'], deadline: 500, spin: 'none' });
  const greeting: string = await pool.call.hello('World!');
  const same = await pool.call('hello', 'World!', { deadline: 100 });
  const raw: knit.RawResult = await pool.callRaw('echo', Buffer.from('x'));
  const ct: number = raw.contentType;
  const ac = new AbortController();
  await pool.call.slow(new Float32Array(4), { signal: ac.signal }).catch((e: unknown) => {
    if (e instanceof knit.Cancelled || e instanceof knit.PeerDied) return e.code;
    throw e;
  });
  await pool.callLoan('checksum', 16, (view: Uint8Array) => view.fill(1));
  const s: knit.Stream = pool.stream('progress', 3);
  for await (const m of s) void m;
  await s.result;
  const { sender, result } = pool.callWithChannel('digest');
  await sender.send(Buffer.alloc(10));
  await sender.close();
  await result;
  await pool.callWithStream('total', [1, 2, 3]);
  const w: knit.WorkerState[] = pool.workers();
  const name: string = pool.info().name;
  await pool.close();
  void [greeting, same, ct, w, name];
}

async function worker(): Promise<void> {
  await knit.serve({
    hello: (name: string) => `Hello, ${name}`,
    echo: knit.handler((ctx: knit.Context) => new knit.Payload(Buffer.from(ctx.payload), ctx.contentType), { raw: true }),
    slow: async (_v: unknown, ctx: knit.Context) => {
      if (ctx.signal.aborted) throw new knit.Cancelled('stop');
      return ctx.timeLeft();
    },
    fail: () => {
      throw new knit.ApplicationError('mine', 4242);
    },
  });
}

const shaped: knit.ArrayValue = knit.typed(new Int16Array(6), [2, 3]);
const e: knit.KnitError = knit.errorFor(6, 'gone');
const n: number = knit.handleCount();
void [host, worker, shaped, e, n];
