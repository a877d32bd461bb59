/* The worker: knit_worker_run on a thread of its own; each handler call (on that thread)
 * hands the request to JavaScript through the thread-safe function and waits, on a condition,
 * for JavaScript to settle it. While it waits it runs the channel jobs JavaScript queues (a
 * worker's channel ends may only be used on the handler's thread) and polls
 * knit_request_is_cancelled every millisecond, telling JavaScript once when it is set.
 *
 * The request payload is given to JavaScript as a Buffer over the request's own bytes (no
 * copy; possibly the shared ring itself), detached when the handler settles: JavaScript can
 * never read ring memory after the handler returned to libknit. */
#include "addon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct serve {
  addon_t *addon;
  pthread_mutex_t mu;
  int refs;             /* under mu: the thread, each handler entry, each live request */
  uint32_t next_id;     /* under mu */
  napi_ref on_request;  /* main thread; NULL once the worker ended */
  napi_ref on_cancel;
  knit_worker *worker;
  napi_deferred done;
  item_t end_item;
  knit_status result;
  char *message;
} serve_t;

static void serve_ref(serve_t *s) {
  pthread_mutex_lock(&s->mu);
  s->refs++;
  pthread_mutex_unlock(&s->mu);
}

static void serve_unref(serve_t *s) {
  pthread_mutex_lock(&s->mu);
  int left = --s->refs;
  pthread_mutex_unlock(&s->mu);
  if (left == 0) {
    pthread_mutex_destroy(&s->mu);
    free(s->message);
    free(s);
  }
}

/* The user data of one registered handler. */
typedef struct entry {
  serve_t *serve;
  uint32_t index;
  bool streaming; /* added as streaming (not in place) */
} entry_t;

static void entry_free(void *p) {
  entry_t *e = p;
  serve_unref(e->serve);
  free(e);
}

struct rc;
typedef struct rc_item {
  item_t item;
  struct rc *rc;
} rc_item_t;

/* One handler call in progress. */
typedef struct rc {
  exec_t ex; /* ex.mu guards every field below but `view` */
  serve_t *serve;
  uint32_t index, id;
  bool streaming;
  const knit_request *request;
  knit_sender *tx;
  knit_receiver *rx;
  int refs;  /* the handler, each posted item, the JavaScript handle */
  bool done; /* JavaScript settled it */
  bool over; /* the handler returned: the request and channel ends are gone */
  knit_status code;
  uint8_t *data;
  size_t len;
  uint32_t content_type;
  char *message;
  rc_item_t request_item, cancel_item;
  napi_ref view; /* main thread: the payload's ArrayBuffer, detached at settlement */
} rc_t;

static void rc_unref(rc_t *rc) {
  pthread_mutex_lock(&rc->ex.mu);
  int left = --rc->refs;
  pthread_mutex_unlock(&rc->ex.mu);
  if (left == 0) {
    serve_t *s = rc->serve;
    exec_destroy(&rc->ex);
    free(rc->data);
    free(rc->message);
    free(rc);
    serve_unref(s);
  }
}

/* Main thread: settles the call (the handler thread then answers libknit). */
static bool rc_settle(napi_env env, rc_t *rc, knit_status code, const uint8_t *data, size_t len,
                      uint32_t content_type, const char *message) {
  uint8_t *copy = NULL;
  if (code == KNIT_OK && len) {
    copy = malloc(len);
    if (!copy) {
      code = KNIT_HANDLER_FAILED;
      message = "out of memory for the result";
    } else {
      memcpy(copy, data, len);
    }
  }
  if (env && rc->view) {
    napi_value ab;
    if (napi_get_reference_value(env, rc->view, &ab) == napi_ok && ab) napi_detach_arraybuffer(env, ab);
    napi_delete_reference(env, rc->view);
    rc->view = NULL;
  }
  pthread_mutex_lock(&rc->ex.mu);
  if (rc->done) {
    pthread_mutex_unlock(&rc->ex.mu);
    free(copy);
    return false;
  }
  rc->done = true;
  rc->code = code;
  rc->data = copy;
  rc->len = code == KNIT_OK ? len : 0;
  rc->content_type = content_type;
  rc->message = code == KNIT_OK ? NULL : dup_cstr(message);
  pthread_cond_broadcast(&rc->ex.cv);
  pthread_mutex_unlock(&rc->ex.mu);
  return true;
}

static void rc_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  rc_unref(data);
}

static void request_deliver(napi_env env, addon_t *addon, item_t *item) {
  rc_t *rc = ((rc_item_t *)item)->rc;
  (void)addon;
  if (!env) {
    rc_settle(NULL, rc, KNIT_SHUTDOWN, NULL, 0, 0, "the Node.js environment is closing");
    rc_unref(rc);
    return;
  }
  serve_t *s = rc->serve;
  napi_value fn = NULL, global, args[7], ext, result;
  if (s->on_request) napi_get_reference_value(env, s->on_request, &fn);
  if (!fn) {
    rc_settle(env, rc, KNIT_SHUTDOWN, NULL, 0, 0, "the worker is ending");
    rc_unref(rc);
    return;
  }
  /* The handler thread waits until the call is settled: the request is valid here. */
  const knit_request *req = rc->request;
  if (req->payload_len > 0 && req->payload) {
    napi_value ab;
    if (napi_create_external_arraybuffer(env, (void *)req->payload, req->payload_len, NULL, NULL, &ab) == napi_ok &&
        napi_create_typedarray(env, napi_uint8_array, req->payload_len, ab, 0, &args[3]) == napi_ok) {
      napi_create_reference(env, ab, 1, &rc->view);
    } else {
      napi_create_buffer_copy(env, req->payload_len, req->payload, NULL, &args[3]);
    }
  } else {
    napi_value ab;
    napi_create_arraybuffer(env, 0, NULL, &ab);
    napi_create_typedarray(env, napi_uint8_array, 0, ab, 0, &args[3]);
  }
  pthread_mutex_lock(&rc->ex.mu);
  rc->refs++; /* the JavaScript handle */
  pthread_mutex_unlock(&rc->ex.mu);
  if (napi_create_external(env, rc, rc_finalize, NULL, &ext) != napi_ok) {
    rc_unref(rc);
    rc_settle(env, rc, KNIT_HANDLER_FAILED, NULL, 0, 0, "cannot wrap the request");
    rc_unref(rc);
    return;
  }
  args[0] = ext;
  napi_create_uint32(env, rc->id, &args[1]);
  napi_create_uint32(env, rc->index, &args[2]);
  napi_create_uint32(env, req->content_type, &args[4]);
  napi_create_double(env, (double)req->request_id, &args[5]);
  napi_create_double(env, (double)req->deadline_ns, &args[6]);
  napi_get_global(env, &global);
  if (napi_call_function(env, global, fn, 7, args, &result) != napi_ok) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    rc_settle(env, rc, KNIT_HANDLER_FAILED, NULL, 0, 0, "the request dispatcher threw");
  }
  rc_unref(rc);
}

static void cancel_deliver(napi_env env, addon_t *addon, item_t *item) {
  rc_t *rc = ((rc_item_t *)item)->rc;
  (void)addon;
  napi_value fn = NULL;
  if (env && rc->serve->on_cancel) napi_get_reference_value(env, rc->serve->on_cancel, &fn);
  pthread_mutex_lock(&rc->ex.mu);
  bool done = rc->done;
  pthread_mutex_unlock(&rc->ex.mu);
  if (fn && !done) {
    napi_value global, id, result;
    napi_get_global(env, &global);
    napi_create_uint32(env, rc->id, &id);
    if (napi_call_function(env, global, fn, 1, &id, &result) != napi_ok) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
    }
  }
  rc_unref(rc);
}

/* Results from this size on are written in place (knit_reply_write_in_place); smaller ones
   through the reply's buffer, which costs less than a loan for a few bytes. */
#define IN_PLACE_MIN 16384

static size_t write_result(void *user_data, uint8_t *buffer, size_t capacity) {
  rc_t *rc = user_data;
  size_t n = rc->len < capacity ? rc->len : capacity;
  memcpy(buffer, rc->data, n);
  return n;
}

static knit_status on_request(void *user_data, const knit_request *req, knit_reply *reply) {
  entry_t *e = user_data;
  serve_t *s = e->serve;
  rc_t *rc = calloc(1, sizeof *rc);
  if (!rc) {
    knit_reply_error(reply, KNIT_HANDLER_FAILED, "out of memory");
    return KNIT_HANDLER_FAILED;
  }
  exec_init(&rc->ex);
  serve_ref(s);
  rc->serve = s;
  rc->index = e->index;
  rc->streaming = e->streaming;
  pthread_mutex_lock(&s->mu);
  rc->id = ++s->next_id;
  pthread_mutex_unlock(&s->mu);
  rc->request = req;
  rc->refs = 2; /* this handler and the request item */
  rc->request_item = (rc_item_t){{request_deliver}, rc};
  rc->cancel_item = (rc_item_t){{cancel_deliver}, rc};
  if (!addon_post(s->addon, &rc->request_item.item)) {
    rc_unref(rc);
    rc_unref(rc);
    knit_reply_error(reply, KNIT_SHUTDOWN, "the Node.js environment is closing");
    return KNIT_SHUTDOWN;
  }
  bool cancel_told = false;
  pthread_mutex_lock(&rc->ex.mu);
  /* Jobs queued before the settlement still run, in order. */
  while (!rc->done || rc->ex.head) {
    job_t *job = exec_pop_locked(&rc->ex);
    if (job) {
      pthread_mutex_unlock(&rc->ex.mu);
      job_run(job, &rc->tx, &rc->rx, req);
      if (!addon_post(s->addon, &job->item)) job_deliver(NULL, s->addon, &job->item);
      pthread_mutex_lock(&rc->ex.mu);
      continue;
    }
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += 1000000; /* poll the cancel entry every millisecond */
    if (t.tv_nsec >= 1000000000) {
      t.tv_sec += 1;
      t.tv_nsec -= 1000000000;
    }
    int err = pthread_cond_timedwait(&rc->ex.cv, &rc->ex.mu, &t);
    if (err == ETIMEDOUT && !cancel_told && !rc->done) {
      bool cancelled = false;
      pthread_mutex_unlock(&rc->ex.mu);
      knit_request_is_cancelled(req, &cancelled);
      pthread_mutex_lock(&rc->ex.mu);
      if (cancelled) {
        cancel_told = true;
        rc->refs++;
        pthread_mutex_unlock(&rc->ex.mu);
        bool posted = addon_post(s->addon, &rc->cancel_item.item);
        pthread_mutex_lock(&rc->ex.mu);
        if (!posted) rc->refs--;
      }
    }
  }
  rc->over = true;
  knit_status code = rc->code;
  pthread_mutex_unlock(&rc->ex.mu);
  knit_status status;
  if (code == KNIT_OK) {
    /* A failure here (a result too large, ...) is the call's status, with its message. */
    if (rc->len >= IN_PLACE_MIN && !rc->streaming) {
      /* Straight into the response ring (one copy fewer than through the reply's buffer). */
      status = knit_reply_write_in_place(reply, rc->len, rc->content_type, write_result, rc);
    } else {
      status = knit_reply_set(reply, rc->data, rc->len, rc->content_type);
    }
  } else {
    knit_reply_error(reply, code, rc->message);
    status = code;
  }
  /* Channel ends still open are ended by libknit when the handler returns. */
  rc_unref(rc);
  return status;
}

/* --- serve ---------------------------------------------------------------------------------- */

static void end_deliver(napi_env env, addon_t *addon, item_t *item) {
  serve_t *s = (serve_t *)((char *)item - offsetof(serve_t, end_item));
  if (env) {
    if (s->result == KNIT_OK)
      napi_resolve_deferred(env, s->done, undefined(env));
    else
      napi_reject_deferred(env, s->done, make_error(env, addon, s->result, s->message));
    napi_delete_reference(env, s->on_request);
    napi_delete_reference(env, s->on_cancel);
    s->on_request = s->on_cancel = NULL;
    addon_end(env, addon);
  }
  serve_unref(s);
}

static void *serve_thread(void *arg) {
  serve_t *s = arg;
  s->result = knit_worker_run(s->worker);
  if (s->result != KNIT_OK) s->message = dup_cstr(knit_last_error_message());
  knit_worker_free(s->worker); /* frees the handler entries */
  s->worker = NULL;
  if (!addon_post(s->addon, &s->end_item)) serve_unref(s);
  return NULL;
}

/* serve(options {region?, slot?, spinNone?}, names[], streaming[], onRequest, onCancel)
   -> Promise: settles when the worker ends (SHUTDOWN: resolves; else rejects). */
static napi_value js_serve(napi_env env, napi_callback_info info) {
  ARGS(env, info, 5);
  napi_value region_v = NULL, slot_v = NULL, spin_v = NULL;
  bool has = false;
  knit_worker *worker = NULL;
  knit_status st;
  napi_has_named_property(env, argv[0], "region", &has);
  if (has) napi_get_named_property(env, argv[0], "region", &region_v);
  napi_has_named_property(env, argv[0], "slot", &has);
  if (has) napi_get_named_property(env, argv[0], "slot", &slot_v);
  napi_has_named_property(env, argv[0], "spinNone", &has);
  if (has) napi_get_named_property(env, argv[0], "spinNone", &spin_v);
  napi_valuetype t = napi_undefined;
  if (region_v) napi_typeof(env, region_v, &t);
  if (t == napi_string) {
    char region[256];
    uint32_t slot;
    if (!get_string(env, region_v, region, sizeof region, "a region name") ||
        !get_u32(env, slot_v, &slot, "a slot number"))
      return NULL;
    st = knit_worker_new(region, slot, &worker);
  } else {
    /* KNIT_REGION / KNIT_SLOT, or --knit-region / --knit-slot (MAP-5). */
    st = knit_worker_from_env(&worker);
  }
  if (st != KNIT_OK) return throw_last(env, addon, st);
  bool spin_none = false;
  if (spin_v) napi_get_value_bool(env, spin_v, &spin_none);
  if (spin_none) knit_worker_set_spin(worker, KNIT_SPIN_NONE, 0);

  serve_t *s = calloc(1, sizeof *s);
  if (!s) {
    knit_worker_free(worker);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&s->mu, NULL);
  s->addon = addon;
  s->refs = 1; /* the thread (its end item) */
  s->worker = worker;
  s->end_item.deliver = end_deliver;
  uint32_t n = 0;
  napi_get_array_length(env, argv[1], &n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value name_v, streaming_v;
    char name[256];
    bool streaming = false;
    napi_get_element(env, argv[1], i, &name_v);
    napi_get_element(env, argv[2], i, &streaming_v);
    napi_get_value_bool(env, streaming_v, &streaming);
    if (!get_string(env, name_v, name, sizeof name, "a function name is a string of 1 to 255 bytes")) goto fail;
    entry_t *e = malloc(sizeof *e);
    if (!e) goto fail;
    e->serve = s;
    e->index = i;
    e->streaming = streaming;
    serve_ref(s);
    st = streaming ? knit_worker_handle_streaming(worker, name, on_request, e, entry_free)
                   : knit_worker_handle_in_place(worker, name, on_request, e, entry_free);
    if (st != KNIT_OK) {
      free(e);
      serve_unref(s);
      throw_last(env, addon, st);
      goto fail;
    }
  }
  napi_value promise;
  napi_create_reference(env, argv[3], 1, &s->on_request);
  napi_create_reference(env, argv[4], 1, &s->on_cancel);
  napi_create_promise(env, &s->done, &promise);
  addon_begin(env, addon); /* a serving worker keeps the process alive */
  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int err = pthread_create(&thread, &attr, serve_thread, s);
  pthread_attr_destroy(&attr);
  if (err) {
    s->result = KNIT_OS_ERROR;
    s->message = dup_cstr("cannot start the worker thread");
    knit_worker_free(worker);
    end_deliver(env, addon, &s->end_item);
  }
  return promise;
fail:
  knit_worker_free(worker); /* frees the entries added so far */
  serve_unref(s);
  return NULL;
}

knit_handlers *serve_handlers(napi_env env, addon_t *addon, napi_value names, napi_value streaming,
                              napi_value js_on_request, napi_value js_on_cancel, void **owner) {
  knit_handlers *set = NULL;
  knit_status st = knit_handlers_new(&set);
  if (st != KNIT_OK) return throw_last(env, addon, st), NULL;
  serve_t *s = calloc(1, sizeof *s);
  if (!s) {
    knit_handlers_free(set);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&s->mu, NULL);
  s->addon = addon;
  s->refs = 1; /* the pool, until serve_detach */
  uint32_t n = 0;
  napi_get_array_length(env, names, &n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value name_v, streaming_v;
    char name[256];
    bool is_streaming = false;
    napi_get_element(env, names, i, &name_v);
    napi_get_element(env, streaming, i, &streaming_v);
    napi_get_value_bool(env, streaming_v, &is_streaming);
    entry_t *e = malloc(sizeof *e);
    if (!e || !get_string(env, name_v, name, sizeof name, "a function name is a string of 1 to 255 bytes")) {
      free(e);
      goto fail;
    }
    e->serve = s;
    e->index = i;
    e->streaming = is_streaming;
    serve_ref(s);
    st = is_streaming ? knit_handlers_add_streaming(set, name, on_request, e, entry_free)
                      : knit_handlers_add_in_place(set, name, on_request, e, entry_free);
    if (st != KNIT_OK) {
      free(e);
      serve_unref(s);
      throw_last(env, addon, st);
      goto fail;
    }
  }
  napi_create_reference(env, js_on_request, 1, &s->on_request);
  napi_create_reference(env, js_on_cancel, 1, &s->on_cancel);
  *owner = s;
  return set;
fail:
  knit_handlers_free(set); /* frees the entries added so far */
  serve_unref(s);
  return NULL;
}

void serve_detach(napi_env env, void *owner) {
  serve_t *s = owner;
  if (!s) return;
  if (env) {
    if (s->on_request) napi_delete_reference(env, s->on_request);
    if (s->on_cancel) napi_delete_reference(env, s->on_cancel);
  }
  s->on_request = s->on_cancel = NULL;
  serve_unref(s);
}

static rc_t *get_rc(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a request handle");
    return NULL;
  }
  return p;
}

/* reqReply(handle, data, contentType) -> bool (false when it was settled already) */
static napi_value js_req_reply(napi_env env, napi_callback_info info) {
  ARGS(env, info, 3);
  (void)addon;
  rc_t *rc = get_rc(env, argv[0]);
  const uint8_t *data = NULL;
  size_t len = 0;
  uint32_t ct;
  if (!rc) return NULL;
  if (!get_bytes(env, argv[1], &data, &len)) {
    napi_throw_type_error(env, NULL, "a result is a Buffer, TypedArray or ArrayBuffer");
    return NULL;
  }
  if (!get_u32(env, argv[2], &ct, "a content type is a u32")) return NULL;
  napi_value b;
  napi_get_boolean(env, rc_settle(env, rc, KNIT_OK, data, len, ct, NULL), &b);
  return b;
}

/* reqError(handle, code, message) -> bool */
static napi_value js_req_error(napi_env env, napi_callback_info info) {
  ARGS(env, info, 3);
  (void)addon;
  rc_t *rc = get_rc(env, argv[0]);
  uint32_t code;
  if (!rc || !get_u32(env, argv[1], &code, "a status is a u32")) return NULL;
  char *message = dup_string(env, argv[2], "a message is a string");
  if (!message) return NULL;
  napi_value b;
  napi_get_boolean(env, rc_settle(env, rc, code ? code : KNIT_HANDLER_FAILED, NULL, 0, 0, message), &b);
  free(message);
  return b;
}

/* reqOp(handle, op, data, contentType, code) -> Promise: a channel job on the handler's
   thread. */
static napi_value js_req_op(napi_env env, napi_callback_info info) {
  ARGS(env, info, 5);
  rc_t *rc = get_rc(env, argv[0]);
  uint32_t op;
  if (!rc || !get_u32(env, argv[1], &op, "an operation")) return NULL;
  if (op > OP_TAKE) {
    napi_throw_range_error(env, NULL, "not a channel operation");
    return NULL;
  }
  napi_value promise;
  job_t *job = job_new(env, (job_op)op, argv[2], argv[3], argv[4], &promise);
  if (!job) return NULL;
  pthread_mutex_lock(&rc->ex.mu);
  bool gone = rc->done || rc->over;
  if (!gone) {
    addon_begin(env, addon);
    exec_push_locked(&rc->ex, job);
  }
  pthread_mutex_unlock(&rc->ex.mu);
  if (gone) job_fail_now(env, addon, job, KNIT_INVALID_ARGUMENT, "the handler call is over: its channels are gone");
  return promise;
}

void serve_init(napi_env env, napi_value exports) {
  EXPORT_FN(env, exports, "serve", js_serve);
  EXPORT_FN(env, exports, "reqReply", js_req_reply);
  EXPORT_FN(env, exports, "reqError", js_req_error);
  EXPORT_FN(env, exports, "reqOp", js_req_op);
}
