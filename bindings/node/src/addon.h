/*
 * The native layer of the Node.js binding: a thin Node-API (C, NAPI_VERSION 8) layer over
 * libknit's C interface (include/knit.h). It owns handles, calls, tickets, the worker loop and
 * channel threads; the API users see is JavaScript (lib/).
 *
 * Threads. JavaScript runs on the main thread only. Work that blocks (starting and closing a
 * pool, a worker's knit_worker_run, channel sends and receives) runs on other threads, and
 * every result comes back through ONE thread-safe function per addon instance (item_t below),
 * whose call_js runs the item's `deliver` on the main thread.
 */
#ifndef KNIT_NODE_ADDON_H
#define KNIT_NODE_ADDON_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "knit.h"

/* Per addon instance (per Node environment) state. */
typedef struct addon {
  napi_threadsafe_function tsfn;  /* delivers items to the main thread */
  uint32_t pending;               /* operations whose result is still to come (main thread) */
  napi_ref make_error;            /* JS (code, message) -> KnitError subclass */
} addon_t;

struct item;
/* Runs on the main thread with the item (env is NULL when the environment is going away:
   free what the item owns without touching JavaScript). */
typedef void (*deliver_fn)(napi_env env, addon_t *addon, struct item *item);

/* Something a thread hands to the main thread. Embedded first in the structs that travel. */
typedef struct item {
  deliver_fn deliver;
} item_t;

/* Posts an item from any thread; never blocks. Returns false when the environment is
   closing (the item is then not delivered: the caller keeps ownership). */
bool addon_post(addon_t *addon, item_t *item);

/* Main thread: one more / one fewer operation whose result is awaited. While any is, the
   thread-safe function is ref'd, keeping the process alive; an idle binding does not. */
void addon_begin(napi_env env, addon_t *addon);
void addon_end(napi_env env, addon_t *addon);

/* Main thread helpers. */
napi_value make_error(napi_env env, addon_t *addon, knit_status code, const char *message);
napi_value throw_knit(napi_env env, addon_t *addon, knit_status code, const char *message);
napi_value throw_last(napi_env env, addon_t *addon, knit_status code);
napi_value undefined(napi_env env);
/* Copies a JS string into `out` (cap bytes, NUL-terminated); false (and a JS TypeError
   pending) when it is not a string or does not fit. */
bool get_string(napi_env env, napi_value v, char *out, size_t cap, const char *what);
/* A newly malloc'd copy of a JS string; NULL (and a TypeError pending) on failure. */
char *dup_string(napi_env env, napi_value v, const char *what);
/* The bytes of a Buffer, TypedArray, DataView or ArrayBuffer; false when it is none. */
bool get_bytes(napi_env env, napi_value v, const uint8_t **data, size_t *len);
bool get_u32(napi_env env, napi_value v, uint32_t *out, const char *what);
/* A non-negative number of nanoseconds (double); KNIT_FOREVER for Infinity. */
bool get_ns(napi_env env, napi_value v, uint64_t *out, const char *what);
/* A newly malloc'd copy of a C string (NULL stays NULL... becomes ""). */
char *dup_cstr(const char *s);
/* A Buffer that owns a response's bytes without copying them (knit_response_free when
   collected); the response is consumed either way. */
napi_value response_buffer(napi_env env, knit_response *response, uint32_t *content_type);
/* The {data, contentType} object of a response (consumed). */
napi_value response_object(napi_env env, knit_response *response);

/* Module parts: each adds its functions to `exports`. */
void host_init(napi_env env, napi_value exports);
void serve_init(napi_env env, napi_value exports);
void chan_init(napi_env env, napi_value exports);

#define EXPORT_FN(env, exports, name, fn)                                                   \
  do {                                                                                       \
    napi_value f_;                                                                           \
    if (napi_create_function((env), (name), NAPI_AUTO_LENGTH, (fn), NULL, &f_) == napi_ok) \
      napi_set_named_property((env), (exports), (name), f_);                                 \
  } while (0)

/* Fetches up to N arguments and the addon state; returns NULL from the caller on failure. */
#define ARGS(env, info, n)                                                   \
  size_t argc = (n);                                                         \
  napi_value argv[(n) > 0 ? (n) : 1];                                        \
  addon_t *addon = NULL;                                                     \
  if (napi_get_cb_info((env), (info), &argc, argv, NULL, NULL) != napi_ok || \
      napi_get_instance_data((env), (void **)&addon) != napi_ok || !addon)   \
    return NULL;                                                             \
  for (size_t i_ = argc; i_ < (size_t)(n); i_++) napi_get_undefined((env), &argv[i_]);

#endif

/* --- jobs: channel operations run on the thread that may perform them ---------------------- */

/* What a job does with a channel end (host ends on their own thread, worker ends on the
   handler's thread, as knit.h requires). */
typedef enum job_op {
  OP_SEND,      /* knit_sender_send (waits for room: backpressure) */
  OP_TRY_SEND,  /* knit_sender_try_send */
  OP_CLOSE,     /* knit_sender_close */
  OP_ABORT,     /* knit_sender_abort, or knit_receiver_abort on a receiving end */
  OP_RECV,      /* knit_receiver_recv */
  OP_OPEN,      /* worker: knit_request_open_channel */
  OP_TAKE       /* worker: knit_request_take_channel */
} job_op;

typedef struct job {
  item_t item;  /* delivered to the main thread once run: settles `deferred` */
  struct job *next;
  job_op op;
  napi_deferred deferred;
  uint8_t *data; /* OP_SEND / OP_TRY_SEND: a private copy of the message */
  size_t len;
  uint32_t content_type;
  uint32_t code;      /* OP_ABORT */
  knit_status status; /* the outcome */
  char *message;      /* its text when status != KNIT_OK */
  knit_response *response; /* OP_RECV's message */
} job_t;

/* A queue of jobs with its lock and condition. */
typedef struct exec {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job_t *head, *tail;
} exec_t;

void exec_init(exec_t *ex);
void exec_destroy(exec_t *ex);
/* With ex->mu held: the next job, or NULL. */
job_t *exec_pop_locked(exec_t *ex);
/* With ex->mu held: appends and signals. */
void exec_push_locked(exec_t *ex, job_t *job);
/* Main thread: a new job from JS arguments (data copied); NULL with an exception pending. */
job_t *job_new(napi_env env, job_op op, napi_value data, napi_value content_type, napi_value code,
               napi_value *promise);
/* Runs a job with the given ends (on the thread allowed to use them). */
void job_run(job_t *job, knit_sender **tx, knit_receiver **rx, const knit_request *request);
/* Main thread: settles a job's promise at once with a failure (it will not run). */
void job_fail_now(napi_env env, addon_t *addon, job_t *job, knit_status code, const char *message);
/* Main thread: the job's deliver (settles, frees). */
void job_deliver(napi_env env, addon_t *addon, item_t *item);

/* A host call in flight (host.c). */
struct call;
/* Registers the completion of a call whose ticket is ready for it (host.c). */
void call_arm(struct call *call);

/* Host channel ends, each served by its own thread (chan.c). */
napi_value chan_wrap_sender(napi_env env, addon_t *addon, knit_sender *tx);
/* A receiving end still to take from `ticket` (knit_ticket_channel, on the channel's
   thread), after which `call` is armed. */
napi_value chan_wrap_stream(napi_env env, addon_t *addon, const knit_ticket *ticket, struct call *call);

/* Thread workers (serve.c): a handler set whose handlers run JavaScript functions of this
   process, for knit_config_set_threads. `*owner` is released with serve_detach (main thread)
   once the pool is freed. NULL with an exception pending. */
knit_handlers *serve_handlers(napi_env env, addon_t *addon, napi_value names, napi_value streaming,
                              napi_value on_request, napi_value on_cancel, void **owner);
void serve_detach(napi_env env, void *owner);
