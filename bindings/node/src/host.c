/* The host: pools (started and closed off the main thread), calls as Promises.
 *
 * A call is knit_call_async (or _loan, _with_channel) then knit_ticket_on_complete: the ready
 * callback runs on a Knit thread and only posts the call to the main thread (non-blocking);
 * there knit_ticket_wait(ticket, 0) takes the outcome at once, the ticket is freed and the
 * Promise settles. A response becomes a Buffer over the response's own bytes (no copy). */
#include "addon.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define NAME_CAP 256 /* function names are 1 to 255 bytes */

/* --- pools ---------------------------------------------------------------------------------- */

typedef struct pool_box {
  knit_pool *pool; /* NULL once closing */
  void *threads;   /* the JavaScript handlers of thread workers (serve.c), or NULL */
} pool_box_t;

static void pool_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  pool_box_t *box = data;
  /* A pool that was never closed: shut it down now (its workers leave). Thread workers
     cannot be waited for here (their handlers need this thread): leave them. */
  if (box->pool && !box->threads) knit_pool_free(box->pool);
  free(box);
}

static knit_pool *get_pool(napi_env env, addon_t *addon, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a pool handle");
    return NULL;
  }
  knit_pool *pool = ((pool_box_t *)p)->pool;
  if (!pool) throw_knit(env, addon, KNIT_SHUTDOWN, "the pool is closed");
  return pool;
}

/* Work that blocks (knit_pool_start, knit_pool_free) on the libuv pool. */
typedef struct pool_work {
  napi_async_work work;
  napi_deferred deferred;
  addon_t *addon;
  knit_config *config; /* start */
  knit_handlers *handlers; /* start, thread workers */
  void *threads;       /* their JavaScript side: kept by the pool, detached after it is freed */
  knit_pool *pool;     /* the result, or the pool to free */
  knit_status status;
  char *message;
} pool_work_t;

static void start_execute(napi_env env, void *data) {
  (void)env;
  pool_work_t *w = data;
  w->status = knit_pool_start(w->config, &w->pool);
  if (w->status != KNIT_OK) w->message = dup_cstr(knit_last_error_message());
  knit_config_free(w->config);
  w->config = NULL;
}

static void free_execute(napi_env env, void *data) {
  (void)env;
  pool_work_t *w = data;
  w->status = knit_pool_free(w->pool);
  if (w->status != KNIT_OK) w->message = dup_cstr(knit_last_error_message());
  w->pool = NULL;
}

static void pool_work_complete(napi_env env, napi_status status, void *data) {
  pool_work_t *w = data;
  addon_t *addon = w->addon;
  if (status != napi_ok && w->status == KNIT_OK) {
    w->status = KNIT_INVALID_ARGUMENT;
    w->message = dup_cstr("the operation was cancelled");
  }
  if (w->handlers) knit_handlers_free(w->handlers);
  if (w->status != KNIT_OK) {
    napi_reject_deferred(env, w->deferred, make_error(env, addon, w->status, w->message));
    if (w->pool) knit_pool_free(w->pool);
    serve_detach(env, w->threads);
  } else if (w->pool) {
    pool_box_t *box = malloc(sizeof *box);
    napi_value ext;
    if (box) {
      box->pool = w->pool;
      box->threads = w->threads;
    }
    if (box && napi_create_external(env, box, pool_finalize, NULL, &ext) == napi_ok) {
      napi_resolve_deferred(env, w->deferred, ext);
    } else {
      free(box);
      knit_pool_free(w->pool);
      napi_reject_deferred(env, w->deferred, make_error(env, addon, KNIT_OS_ERROR, "out of memory"));
    }
  } else {
    /* A pool closed: its thread workers are gone, their JavaScript side can go too. */
    serve_detach(env, w->threads);
    napi_resolve_deferred(env, w->deferred, undefined(env));
  }
  addon_end(env, addon);
  napi_delete_async_work(env, w->work);
  if (w->config) knit_config_free(w->config);
  free(w->message);
  free(w);
}

static napi_value queue_pool_work(napi_env env, addon_t *addon, pool_work_t *w, napi_async_execute_callback execute) {
  napi_value promise, name;
  napi_create_string_utf8(env, "knit.pool", NAPI_AUTO_LENGTH, &name);
  w->addon = addon;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, pool_work_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    napi_throw_error(env, NULL, "cannot queue the pool's work");
    return NULL;
  }
  addon_begin(env, addon);
  return promise;
}

/* Reads option `key` of `obj` when present; false with an exception pending on a bad value. */
static bool opt(napi_env env, napi_value obj, const char *key, napi_value *out) {
  bool has = false;
  *out = NULL;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return true;
  napi_value v;
  napi_valuetype t;
  napi_get_named_property(env, obj, key, &v);
  napi_typeof(env, v, &t);
  if (t != napi_undefined) *out = v;
  return true;
}

static bool opt_u32(napi_env env, napi_value obj, const char *key, bool *present, uint32_t *out) {
  napi_value v;
  opt(env, obj, key, &v);
  *present = v != NULL;
  return !v || get_u32(env, v, out, key);
}

static bool opt_ns(napi_env env, napi_value obj, const char *key, bool *present, uint64_t *out) {
  napi_value v;
  opt(env, obj, key, &v);
  *present = v != NULL;
  return !v || get_ns(env, v, out, key);
}

/* A NULL-terminated array of strings from a JS array (malloc'd); NULL with an exception. */
static char **string_array(napi_env env, napi_value arr, const char *what) {
  bool is = false;
  uint32_t n = 0;
  if (napi_is_array(env, arr, &is) != napi_ok || !is || napi_get_array_length(env, arr, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, what);
    return NULL;
  }
  char **out = calloc((size_t)n + 1, sizeof *out);
  if (!out) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    napi_get_element(env, arr, i, &v);
    out[i] = dup_string(env, v, what);
    if (!out[i]) {
      for (uint32_t j = 0; j < i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  return out;
}

static void free_strings(char **s) {
  if (!s) return;
  for (char **p = s; *p; p++) free(*p);
  free(s);
}

/* Builds the config from normalised options (lib/pool.js): worker processes (`argv`), or
   thread workers running JavaScript handlers (`threads`: {names, streaming, onRequest,
   onCancel}; their set in *handlers, their owner in *threads). NULL with an exception
   pending. */
static knit_config *config_from(napi_env env, addon_t *addon, napi_value o, knit_handlers **handlers, void **threads) {
  knit_config *cfg = NULL;
  knit_status st = knit_config_new(&cfg);
  if (st != KNIT_OK) return throw_last(env, addon, st), NULL;
  bool has;
  uint32_t u, u2;
  uint64_t ns;
  napi_value v;
  char **argv = NULL, **envp = NULL;
#define TRY(x)                                     \
  do {                                             \
    if (!(x)) goto fail;                           \
  } while (0)
#define SET(call)                                  \
  do {                                             \
    st = (call);                                   \
    if (st != KNIT_OK) {                           \
      throw_last(env, addon, st);                  \
      goto fail;                                   \
    }                                              \
  } while (0)
  TRY(opt_u32(env, o, "workers", &has, &u));
  if (has) SET(knit_config_set_workers(cfg, u));
  opt(env, o, "threads", &v);
  if (v) {
    napi_value names, streaming, on_request, on_cancel;
    napi_get_named_property(env, v, "names", &names);
    napi_get_named_property(env, v, "streaming", &streaming);
    napi_get_named_property(env, v, "onRequest", &on_request);
    napi_get_named_property(env, v, "onCancel", &on_cancel);
    TRY(*handlers = serve_handlers(env, addon, names, streaming, on_request, on_cancel, threads));
    SET(knit_config_set_threads(cfg, *handlers));
  } else {
    bool external = false;
    opt(env, o, "external", &v);
    if (v) napi_get_value_bool(env, v, &external);
    if (external) {
      /* Workers started by someone else attach by name and index (knit_pool_wait_worker). */
      SET(knit_config_set_external(cfg, true));
    } else {
      opt(env, o, "argv", &v);
      if (!v) {
        napi_throw_type_error(env, NULL, "a pool needs a command (or handlers, or external)");
        goto fail;
      }
      TRY(argv = string_array(env, v, "command is an array of strings"));
      opt(env, o, "envp", &v);
      if (v) TRY(envp = string_array(env, v, "env is an array of NAME=VALUE strings"));
      SET(knit_config_set_process(cfg, (const char *const *)argv, (const char *const *)envp));
    }
  }
  TRY(opt_u32(env, o, "spinPolicy", &has, &u));
  if (has) {
    bool has2;
    u2 = 0;
    TRY(opt_u32(env, o, "spinIterations", &has2, &u2));
    SET(knit_config_set_spin(cfg, u, u2));
  }
  TRY(opt_u32(env, o, "ringSize", &has, &u));
  if (has) {
    bool has2;
    u2 = u;
    TRY(opt_u32(env, o, "responseRingSize", &has2, &u2));
    SET(knit_config_set_ring_sizes(cfg, u, u2));
  }
  TRY(opt_u32(env, o, "channelSlots", &has, &u));
  if (has) {
    bool has2;
    u2 = 65536;
    TRY(opt_u32(env, o, "channelRing", &has2, &u2));
    SET(knit_config_set_channels(cfg, u, u2));
  }
  TRY(opt_u32(env, o, "inflight", &has, &u));
  if (has) SET(knit_config_set_inflight(cfg, u));
  TRY(opt_ns(env, o, "maxMessageLen", &has, &ns));
  if (has) SET(knit_config_set_max_message_len(cfg, ns));
  TRY(opt_ns(env, o, "deadlineNs", &has, &ns));
  if (has) SET(knit_config_set_default_deadline(cfg, ns));
  opt(env, o, "restart", &v);
  if (v) {
    bool b = false;
    napi_get_value_bool(env, v, &b);
    SET(knit_config_set_restart(cfg, b));
  }
  TRY(opt_u32(env, o, "backpressure", &has, &u));
  if (has) SET(knit_config_set_backpressure(cfg, u));
  TRY(opt_ns(env, o, "startTimeoutNs", &has, &ns));
  if (has) SET(knit_config_set_start_timeout(cfg, ns));
  TRY(opt_ns(env, o, "shutdownTimeoutNs", &has, &ns));
  if (has) SET(knit_config_set_shutdown_timeout(cfg, ns));
  free_strings(argv);
  free_strings(envp);
  return cfg;
fail:
  free_strings(argv);
  free_strings(envp);
  knit_config_free(cfg);
  if (*handlers) knit_handlers_free(*handlers);
  *handlers = NULL;
  serve_detach(env, *threads);
  *threads = NULL;
  return NULL;
#undef TRY
#undef SET
}

/* poolStart(options) -> Promise<handle> */
static napi_value js_pool_start(napi_env env, napi_callback_info info) {
  ARGS(env, info, 1);
  knit_handlers *handlers = NULL;
  void *threads = NULL;
  knit_config *cfg = config_from(env, addon, argv[0], &handlers, &threads);
  if (!cfg) return NULL;
  pool_work_t *w = calloc(1, sizeof *w);
  if (!w) {
    knit_config_free(cfg);
    if (handlers) knit_handlers_free(handlers);
    serve_detach(env, threads);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  w->config = cfg;
  w->handlers = handlers;
  w->threads = threads;
  return queue_pool_work(env, addon, w, start_execute);
}

/* poolClose(handle) -> Promise: shuts the pool down off the main thread. */
static napi_value js_pool_close(napi_env env, napi_callback_info info) {
  ARGS(env, info, 1);
  void *p = NULL;
  if (napi_get_value_external(env, argv[0], &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a pool handle");
    return NULL;
  }
  pool_box_t *box = p;
  pool_work_t *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  w->pool = box->pool;
  w->threads = box->threads;
  box->pool = NULL;
  box->threads = NULL;
  if (!w->pool) {
    /* Already closed: settle at once. */
    napi_value promise;
    napi_deferred d;
    napi_create_promise(env, &d, &promise);
    napi_resolve_deferred(env, d, undefined(env));
    free(w);
    return promise;
  }
  return queue_pool_work(env, addon, w, free_execute);
}

static void set_num(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, key, n);
}

static void set_bool(napi_env env, napi_value obj, const char *key, bool v) {
  napi_value b;
  napi_get_boolean(env, v, &b);
  napi_set_named_property(env, obj, key, b);
}

/* poolWorker(handle, index) -> {index, pid, ready, dead, outstanding, starts} */
static napi_value js_pool_worker(napi_env env, napi_callback_info info) {
  ARGS(env, info, 2);
  knit_pool *pool = get_pool(env, addon, argv[0]);
  uint32_t index;
  if (!pool || !get_u32(env, argv[1], &index, "a worker index")) return NULL;
  knit_worker_info wi;
  memset(&wi, 0, sizeof wi);
  wi.struct_size = sizeof wi;
  knit_status st = knit_pool_get_worker(pool, index, &wi);
  if (st != KNIT_OK) return throw_last(env, addon, st);
  napi_value obj;
  napi_create_object(env, &obj);
  set_num(env, obj, "index", wi.index);
  set_num(env, obj, "pid", wi.pid);
  set_bool(env, obj, "ready", wi.ready);
  set_bool(env, obj, "dead", wi.dead);
  set_num(env, obj, "outstanding", (double)wi.outstanding);
  set_num(env, obj, "starts", (double)wi.starts);
  return obj;
}

/* poolInfo(handle) -> the region header */
static napi_value js_pool_info(napi_env env, napi_callback_info info) {
  ARGS(env, info, 1);
  knit_pool *pool = get_pool(env, addon, argv[0]);
  if (!pool) return NULL;
  knit_region_info ri;
  memset(&ri, 0, sizeof ri);
  ri.struct_size = sizeof ri;
  knit_status st = knit_pool_get_info(pool, &ri);
  if (st != KNIT_OK) return throw_last(env, addon, st);
  napi_value obj, s;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, ri.name, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, obj, "name", s);
  set_num(env, obj, "major", ri.major);
  set_num(env, obj, "minor", ri.minor);
  set_num(env, obj, "workerSlots", ri.worker_slots);
  set_num(env, obj, "channelSlots", ri.channel_slots);
  set_num(env, obj, "inflightMax", ri.inflight_max);
  set_num(env, obj, "requestRingCap", ri.request_ring_cap);
  set_num(env, obj, "responseRingCap", ri.response_ring_cap);
  set_num(env, obj, "channelRingCap", ri.channel_ring_cap);
  set_num(env, obj, "poisonCode", ri.poison_code);
  set_num(env, obj, "poisonedBy", ri.poisoned_by);
  set_num(env, obj, "regionLen", (double)ri.region_len);
  set_num(env, obj, "maxMessageLen", (double)ri.max_message_len);
  return obj;
}

/* poolParticipant(handle, index) -> {index, state, role, pid, epoch} (validated entry) */
static napi_value js_pool_participant(napi_env env, napi_callback_info info) {
  ARGS(env, info, 2);
  knit_pool *pool = get_pool(env, addon, argv[0]);
  uint32_t index;
  if (!pool || !get_u32(env, argv[1], &index, "a participant index")) return NULL;
  knit_participant_info pi;
  memset(&pi, 0, sizeof pi);
  pi.struct_size = sizeof pi;
  knit_status st = knit_pool_get_participant(pool, index, &pi);
  if (st != KNIT_OK) return throw_last(env, addon, st);
  napi_value obj;
  napi_create_object(env, &obj);
  set_num(env, obj, "index", pi.index);
  set_num(env, obj, "state", pi.state);
  set_num(env, obj, "role", pi.role);
  set_num(env, obj, "pid", pi.pid);
  set_num(env, obj, "epoch", pi.epoch);
  return obj;
}

/* poolReserveWorker(handle, index) -> epoch (external pools) */
static napi_value js_pool_reserve_worker(napi_env env, napi_callback_info info) {
  ARGS(env, info, 2);
  knit_pool *pool = get_pool(env, addon, argv[0]);
  uint32_t index, epoch = 0;
  if (!pool || !get_u32(env, argv[1], &index, "a worker index")) return NULL;
  knit_status st = knit_pool_reserve_worker(pool, index, &epoch);
  if (st != KNIT_OK) return throw_last(env, addon, st);
  napi_value v;
  napi_create_uint32(env, epoch, &v);
  return v;
}

/* Waiting for and releasing one worker block: they run on the libuv pool. */
typedef struct worker_work {
  napi_async_work work;
  napi_deferred deferred;
  addon_t *addon;
  const knit_pool *pool; /* a freed pool is refused by libknit, never used */
  uint32_t worker;
  uint64_t timeout_ns;
  bool release;
  knit_status status;
  char *message;
  char *functions; /* wait: the NUL-separated names */
  size_t functions_len;
} worker_work_t;

static void worker_execute(napi_env env, void *data) {
  (void)env;
  worker_work_t *w = data;
  if (w->release) {
    w->status = knit_pool_release_worker(w->pool, w->worker, w->timeout_ns);
  } else {
    w->status = knit_pool_wait_worker(w->pool, w->worker, w->timeout_ns);
    size_t len = 0;
    if (w->status == KNIT_OK) w->status = knit_pool_worker_functions(w->pool, w->worker, NULL, 0, &len);
    if (w->status == KNIT_OK) {
      w->functions = malloc(len ? len : 1);
      if (!w->functions) {
        w->status = KNIT_OS_ERROR;
        w->message = dup_cstr("out of memory");
        return;
      }
      w->status = knit_pool_worker_functions(w->pool, w->worker, w->functions, len, &w->functions_len);
      if (w->status == KNIT_OK && w->functions_len > len) {
        w->status = KNIT_TIMED_OUT; /* the worker changed meanwhile: wait again */
        w->message = dup_cstr("the worker's function table changed while it was read");
        return;
      }
    }
  }
  if (w->status != KNIT_OK && !w->message) w->message = dup_cstr(knit_last_error_message());
}

static void worker_complete(napi_env env, napi_status status, void *data) {
  worker_work_t *w = data;
  addon_t *addon = w->addon;
  if (status != napi_ok && w->status == KNIT_OK) {
    w->status = KNIT_INVALID_ARGUMENT;
    w->message = dup_cstr("the operation was cancelled");
  }
  if (w->status != KNIT_OK) {
    napi_reject_deferred(env, w->deferred, make_error(env, addon, w->status, w->message));
  } else if (w->release) {
    napi_resolve_deferred(env, w->deferred, undefined(env));
  } else {
    napi_value arr, s;
    uint32_t n = 0;
    napi_create_array(env, &arr);
    for (size_t at = 0; at < w->functions_len;) {
      size_t len = strnlen(w->functions + at, w->functions_len - at);
      napi_create_string_utf8(env, w->functions + at, len, &s);
      napi_set_element(env, arr, n++, s);
      at += len + 1;
    }
    napi_resolve_deferred(env, w->deferred, arr);
  }
  addon_end(env, addon);
  napi_delete_async_work(env, w->work);
  free(w->message);
  free(w->functions);
  free(w);
}

/* poolWaitWorker(handle, index, timeoutNs) -> Promise<names[]>;
   poolReleaseWorker(handle, index, timeoutNs) -> Promise */
static napi_value worker_op(napi_env env, napi_callback_info info, bool release) {
  ARGS(env, info, 3);
  knit_pool *pool = get_pool(env, addon, argv[0]);
  worker_work_t *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (!pool || !get_u32(env, argv[1], &w->worker, "a worker index") ||
      !get_ns(env, argv[2], &w->timeout_ns, "a timeout in ns")) {
    free(w);
    return NULL;
  }
  w->pool = pool;
  w->release = release;
  w->addon = addon;
  napi_value promise, name;
  napi_create_string_utf8(env, "knit.worker", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, worker_execute, worker_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    free(w);
    napi_throw_error(env, NULL, "cannot queue the worker operation");
    return NULL;
  }
  addon_begin(env, addon);
  return promise;
}

static napi_value js_pool_wait_worker(napi_env env, napi_callback_info info) {
  return worker_op(env, info, false);
}

static napi_value js_pool_release_worker(napi_env env, napi_callback_info info) {
  return worker_op(env, info, true);
}

/* --- calls ---------------------------------------------------------------------------------- */

typedef struct call {
  item_t item;
  addon_t *addon;
  knit_ticket *ticket;
  napi_deferred deferred;
  knit_status arm_status; /* when knit_ticket_on_complete itself failed */
  char *arm_message;
  int refs;  /* main thread: 1 for the completion, 1 while JS holds a cancel handle */
  bool done; /* main thread: settled, ticket freed */
} call_t;

static void call_unref(call_t *c) {
  if (--c->refs == 0) {
    free(c->arm_message);
    free(c);
  }
}

static void call_deliver(napi_env env, addon_t *addon, item_t *item) {
  call_t *c = (call_t *)item;
  if (!env) {
    /* The environment is going away: nothing to settle. */
    knit_ticket_free(c->ticket);
    return;
  }
  knit_response *response = NULL;
  knit_status st = c->arm_status;
  char *message = NULL;
  if (st == KNIT_OK) st = knit_ticket_wait(c->ticket, 0, &response);
  if (st != KNIT_OK)
    message = dup_cstr(c->arm_status != KNIT_OK ? c->arm_message : knit_last_error_message());
  knit_ticket_free(c->ticket);
  c->ticket = NULL;
  c->done = true;
  if (st == KNIT_OK)
    napi_resolve_deferred(env, c->deferred, response_object(env, response));
  else
    napi_reject_deferred(env, c->deferred, make_error(env, addon, st, message));
  free(message);
  addon_end(env, addon);
  call_unref(c);
}

/* On a Knit thread: only hand the call to the main thread. */
static void on_ready(void *user_data) {
  call_t *c = user_data;
  if (!addon_post(c->addon, &c->item)) {
    /* The environment is closing: nobody will settle the call. */
    knit_ticket_free(c->ticket);
  }
}

void call_arm(call_t *c) {
  knit_status st = knit_ticket_on_complete(c->ticket, on_ready, c);
  if (st != KNIT_OK) {
    c->arm_status = st;
    c->arm_message = dup_cstr(knit_last_error_message());
    if (!addon_post(c->addon, &c->item)) knit_ticket_free(c->ticket);
  }
}

static void cancel_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  call_unref(data);
}

/* A new pending call for `ticket`; its Promise in *promise, a cancel handle in *handle when
   `want_handle`. */
static call_t *call_new(napi_env env, addon_t *addon, knit_ticket *ticket, bool want_handle,
                        napi_value *promise, napi_value *handle) {
  call_t *c = calloc(1, sizeof *c);
  if (!c || napi_create_promise(env, &c->deferred, promise) != napi_ok) {
    free(c);
    knit_ticket_free(ticket);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  c->item.deliver = call_deliver;
  c->addon = addon;
  c->ticket = ticket;
  c->refs = 1;
  *handle = NULL;
  if (want_handle) {
    if (napi_create_external(env, c, cancel_finalize, NULL, handle) == napi_ok) c->refs++;
  }
  addon_begin(env, addon);
  return c;
}

/* The common arguments of the call functions: pool, name, content type, deadline. */
typedef struct call_args {
  knit_pool *pool;
  char name[NAME_CAP];
  uint32_t content_type;
  uint64_t deadline_ns;
} call_args_t;

static bool call_args(napi_env env, addon_t *addon, napi_value *argv, size_t ct_at, call_args_t *a) {
  a->pool = get_pool(env, addon, argv[0]);
  return a->pool && get_string(env, argv[1], a->name, sizeof a->name, "a function name is a string of 1 to 255 bytes") &&
         get_u32(env, argv[ct_at], &a->content_type, "a content type is a u32") &&
         get_ns(env, argv[ct_at + 1], &a->deadline_ns, "a deadline in ns");
}

static napi_value pair(napi_env env, napi_value a, napi_value b, napi_value c) {
  napi_value arr;
  napi_create_array_with_length(env, 3, &arr);
  napi_set_element(env, arr, 0, a);
  napi_set_element(env, arr, 1, b ? b : undefined(env));
  napi_set_element(env, arr, 2, c ? c : undefined(env));
  return arr;
}

/* The fast path of a lone call: polls the ticket for at most `spin_ns` (a few microseconds,
   bounded: the event loop waits that long at most) and, when the outcome came meanwhile,
   takes it here instead of through the ready callback and the thread-safe function (two
   thread hand-offs fewer). Returns false, the ticket untouched, when it did not come. */
static bool call_spin(napi_env env, addon_t *addon, knit_ticket *ticket, uint64_t spin_ns, napi_value *promise) {
  if (spin_ns == 0) return false;
  uint64_t end = knit_monotonic_ns() + spin_ns;
  bool done = false;
  for (unsigned i = 0;; i++) {
    if (knit_ticket_poll(ticket, &done) != KNIT_OK) return false;
    if (done) break;
    if ((i & 15) == 15) {
      if (knit_monotonic_ns() >= end) return false;
      /* The outcome is read by libknit's reactor thread: on a machine with few free cores
         it needs the one this thread spins on. */
      sched_yield();
    }
  }
  knit_response *response = NULL;
  knit_status st = knit_ticket_wait(ticket, 0, &response);
  char *message = st == KNIT_OK ? NULL : dup_cstr(knit_last_error_message());
  knit_ticket_free(ticket);
  napi_deferred deferred;
  napi_create_promise(env, &deferred, promise);
  if (st == KNIT_OK)
    napi_resolve_deferred(env, deferred, response_object(env, response));
  else
    napi_reject_deferred(env, deferred, make_error(env, addon, st, message));
  free(message);
  return true;
}

/* call(pool, name, data, contentType, deadlineNs, wantHandle, worker?, spinNs?) -> Promise |
   [Promise, handle]; `worker` (1 or more) pins the call to that worker (knit_call_async_on);
   `spinNs` allows the fast path of call_spin (not with a cancel handle). */
static napi_value js_call(napi_env env, napi_callback_info info) {
  ARGS(env, info, 8);
  call_args_t a;
  const uint8_t *data = NULL;
  size_t len = 0;
  if (!call_args(env, addon, argv, 3, &a)) return NULL;
  if (!get_bytes(env, argv[2], &data, &len)) {
    napi_throw_type_error(env, NULL, "a payload is a Buffer, TypedArray or ArrayBuffer");
    return NULL;
  }
  bool want = false;
  napi_get_value_bool(env, argv[5], &want);
  uint32_t worker = 0;
  napi_valuetype wt;
  napi_typeof(env, argv[6], &wt);
  if (wt != napi_undefined && !get_u32(env, argv[6], &worker, "a worker index")) return NULL;
  knit_ticket *ticket = NULL;
  /* The request is copied into the ring before this returns. */
  knit_status st = worker ? knit_call_async_on(a.pool, worker, a.name, data, len, a.content_type, a.deadline_ns, &ticket)
                          : knit_call_async(a.pool, a.name, data, len, a.content_type, a.deadline_ns, &ticket);
  if (st != KNIT_OK) return throw_last(env, addon, st);
  napi_value promise, handle;
  uint64_t spin_ns = 0;
  napi_typeof(env, argv[7], &wt);
  if (wt != napi_undefined && !get_ns(env, argv[7], &spin_ns, "a spin time in ns")) {
    knit_ticket_free(ticket);
    return NULL;
  }
  if (!want && call_spin(env, addon, ticket, spin_ns, &promise)) return promise;
  call_t *c = call_new(env, addon, ticket, want, &promise, &handle);
  if (!c) return NULL;
  call_arm(c);
  return want ? pair(env, promise, handle, NULL) : promise;
}

/* The loan: JS writes the request straight into the ring through a view that is detached
   when fill returns, so no JavaScript can touch ring memory afterwards. */
typedef struct loan {
  napi_env env;
  napi_value fill;
  bool threw;
  bool called;
} loan_t;

static void loan_fill(void *user_data, uint8_t *buffer, size_t len) {
  loan_t *l = user_data;
  napi_env env = l->env;
  napi_value ab, view, global, ignored;
  l->called = true;
  if (napi_create_external_arraybuffer(env, buffer, len, NULL, NULL, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_uint8_array, len, ab, 0, &view) != napi_ok) {
    /* No view: the request must still be written in full (it holds stale bytes). */
    memset(buffer, 0, len);
    l->threw = true;
    return;
  }
  napi_get_global(env, &global);
  if (napi_call_function(env, global, l->fill, 1, &view, &ignored) != napi_ok) l->threw = true;
  napi_detach_arraybuffer(env, ab);
  /* A fill that threw may have written part of the request: the call goes out (fill cannot
     stop it) and is cancelled at once; it carries zeros, not stale ring bytes. */
  if (l->threw) memset(buffer, 0, len);
}

/* callLoan(pool, name, len, contentType, deadlineNs, fill, wantHandle) */
static napi_value js_call_loan(napi_env env, napi_callback_info info) {
  ARGS(env, info, 7);
  call_args_t a;
  double dlen;
  if (!call_args(env, addon, argv, 3, &a)) return NULL;
  if (napi_get_value_double(env, argv[2], &dlen) != napi_ok || !(dlen >= 0) || dlen > 9007199254740991.0 ||
      dlen != (double)(size_t)dlen) {
    napi_throw_range_error(env, NULL, "a loan length is a non-negative integer");
    return NULL;
  }
  bool want = false;
  napi_get_value_bool(env, argv[6], &want);
  loan_t l = {env, argv[5], false, false};
  knit_ticket *ticket = NULL;
  knit_status st = knit_call_async_loan(a.pool, a.name, (size_t)dlen, a.content_type, a.deadline_ns,
                                        loan_fill, &l, &ticket);
  if (st != KNIT_OK) {
    if (l.threw) return NULL; /* the fill function's exception is pending */
    return throw_last(env, addon, st);
  }
  if (l.threw) {
    /* The request went out with what fill wrote before it threw: cancel it, rethrow. */
    knit_ticket_cancel(ticket);
    knit_ticket_free(ticket);
    return NULL;
  }
  napi_value promise, handle;
  call_t *c = call_new(env, addon, ticket, want, &promise, &handle);
  if (!c) return NULL;
  call_arm(c);
  return want ? pair(env, promise, handle, NULL) : promise;
}

/* callWithChannel(pool, name, data, contentType, deadlineNs) -> [Promise, sender, cancel] */
static napi_value js_call_with_channel(napi_env env, napi_callback_info info) {
  ARGS(env, info, 5);
  call_args_t a;
  const uint8_t *data = NULL;
  size_t len = 0;
  if (!call_args(env, addon, argv, 3, &a)) return NULL;
  if (!get_bytes(env, argv[2], &data, &len)) {
    napi_throw_type_error(env, NULL, "a payload is a Buffer, TypedArray or ArrayBuffer");
    return NULL;
  }
  knit_ticket *ticket = NULL;
  knit_sender *tx = NULL;
  knit_status st = knit_call_with_channel(a.pool, a.name, data, len, a.content_type, a.deadline_ns, &ticket, &tx);
  if (st != KNIT_OK) return throw_last(env, addon, st);
  napi_value promise, handle;
  call_t *c = call_new(env, addon, ticket, true, &promise, &handle);
  if (!c) {
    knit_sender_free(tx);
    return NULL;
  }
  call_arm(c);
  napi_value sender = chan_wrap_sender(env, addon, tx);
  if (!sender) return NULL;
  return pair(env, promise, sender, handle);
}

/* callStream(pool, name, data, contentType, deadlineNs) -> [Promise, receiver, cancel]: the
   receiver's thread takes the worker's channel, then arms the call. */
static napi_value js_call_stream(napi_env env, napi_callback_info info) {
  ARGS(env, info, 5);
  call_args_t a;
  const uint8_t *data = NULL;
  size_t len = 0;
  if (!call_args(env, addon, argv, 3, &a)) return NULL;
  if (!get_bytes(env, argv[2], &data, &len)) {
    napi_throw_type_error(env, NULL, "a payload is a Buffer, TypedArray or ArrayBuffer");
    return NULL;
  }
  knit_ticket *ticket = NULL;
  knit_status st = knit_call_async(a.pool, a.name, data, len, a.content_type, a.deadline_ns, &ticket);
  if (st != KNIT_OK) return throw_last(env, addon, st);
  napi_value promise, handle;
  call_t *c = call_new(env, addon, ticket, true, &promise, &handle);
  if (!c) return NULL;
  napi_value receiver = chan_wrap_stream(env, addon, ticket, c);
  if (!receiver) return NULL;
  return pair(env, promise, receiver, handle);
}

static void *cancel_thread(void *arg) {
  /* A freed ticket is refused (KNIT_INVALID_ARGUMENT), never a crash: the call may settle
     meanwhile. */
  knit_ticket_cancel(arg);
  return NULL;
}

/* cancel(handle): cancels the call unless it has settled. On a short-lived thread: cancelling
   a stream's ticket waits while its channel is being taken (knit.h), and the event loop must
   not. */
static napi_value js_cancel(napi_env env, napi_callback_info info) {
  ARGS(env, info, 1);
  (void)addon;
  void *p = NULL;
  if (napi_get_value_external(env, argv[0], &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a call handle");
    return NULL;
  }
  call_t *c = p;
  if (!c->done && c->ticket) {
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, cancel_thread, c->ticket) != 0) knit_ticket_cancel(c->ticket);
    pthread_attr_destroy(&attr);
  }
  return undefined(env);
}

void host_init(napi_env env, napi_value exports) {
  EXPORT_FN(env, exports, "poolStart", js_pool_start);
  EXPORT_FN(env, exports, "poolClose", js_pool_close);
  EXPORT_FN(env, exports, "poolWorker", js_pool_worker);
  EXPORT_FN(env, exports, "poolInfo", js_pool_info);
  EXPORT_FN(env, exports, "poolParticipant", js_pool_participant);
  EXPORT_FN(env, exports, "poolReserveWorker", js_pool_reserve_worker);
  EXPORT_FN(env, exports, "poolWaitWorker", js_pool_wait_worker);
  EXPORT_FN(env, exports, "poolReleaseWorker", js_pool_release_worker);
  EXPORT_FN(env, exports, "call", js_call);
  EXPORT_FN(env, exports, "callLoan", js_call_loan);
  EXPORT_FN(env, exports, "callWithChannel", js_call_with_channel);
  EXPORT_FN(env, exports, "callStream", js_call_stream);
  EXPORT_FN(env, exports, "cancel", js_cancel);
}
