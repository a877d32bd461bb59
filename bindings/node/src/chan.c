/* Jobs (channel operations queued by JavaScript, run where knit.h allows them) and the host's
   channel ends: each open host channel end has one thread that runs its jobs in order, so a
   send that waits for room (backpressure) or a receive that waits for a message never blocks
   the event loop nor a libuv pool thread. */
#include "addon.h"

#include <stdlib.h>
#include <string.h>

void exec_init(exec_t *ex) {
  pthread_mutex_init(&ex->mu, NULL);
  pthread_cond_init(&ex->cv, NULL);
  ex->head = ex->tail = NULL;
}

void exec_destroy(exec_t *ex) {
  pthread_cond_destroy(&ex->cv);
  pthread_mutex_destroy(&ex->mu);
}

job_t *exec_pop_locked(exec_t *ex) {
  job_t *job = ex->head;
  if (job) {
    ex->head = job->next;
    if (!ex->head) ex->tail = NULL;
    job->next = NULL;
  }
  return job;
}

void exec_push_locked(exec_t *ex, job_t *job) {
  job->next = NULL;
  if (ex->tail)
    ex->tail->next = job;
  else
    ex->head = job;
  ex->tail = job;
  pthread_cond_broadcast(&ex->cv);
}

static void job_free(job_t *job) {
  free(job->data);
  free(job->message);
  if (job->response) knit_response_free(job->response);
  free(job);
}

job_t *job_new(napi_env env, job_op op, napi_value data, napi_value content_type, napi_value code,
               napi_value *promise) {
  job_t *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  job->item.deliver = job_deliver;
  job->op = op;
  if (op == OP_SEND || op == OP_TRY_SEND) {
    const uint8_t *bytes = NULL;
    size_t len = 0;
    if (!get_bytes(env, data, &bytes, &len)) {
      free(job);
      napi_throw_type_error(env, NULL, "a message is a Buffer, TypedArray or ArrayBuffer");
      return NULL;
    }
    /* A private copy: the caller may reuse its buffer as soon as send() returns. */
    job->data = malloc(len ? len : 1);
    if (!job->data) {
      free(job);
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    if (len) memcpy(job->data, bytes, len);
    job->len = len;
    if (!get_u32(env, content_type, &job->content_type, "a content type is a u32")) {
      job_free(job);
      return NULL;
    }
  }
  if (op == OP_ABORT && !get_u32(env, code, &job->code, "an abort code is a u32")) {
    job_free(job);
    return NULL;
  }
  if (napi_create_promise(env, &job->deferred, promise) != napi_ok) {
    job_free(job);
    return NULL;
  }
  return job;
}

void job_run(job_t *job, knit_sender **tx, knit_receiver **rx, const knit_request *request) {
  knit_status st = KNIT_OK;
  const char *why = NULL;
  switch (job->op) {
    case OP_SEND:
      if (*tx) st = knit_sender_send(*tx, job->data, job->len, job->content_type);
      else why = "the channel is closed";
      break;
    case OP_TRY_SEND:
      if (*tx) st = knit_sender_try_send(*tx, job->data, job->len);
      else why = "the channel is closed";
      break;
    case OP_CLOSE:
      if (*tx) {
        st = knit_sender_close(*tx); /* the sender is gone whatever the status */
        *tx = NULL;
      }
      break;
    case OP_ABORT:
      if (*tx) {
        st = knit_sender_abort(*tx, job->code);
        *tx = NULL;
      } else if (*rx) {
        st = knit_receiver_abort(*rx, job->code);
      }
      break;
    case OP_RECV:
      if (*rx) st = knit_receiver_recv(*rx, &job->response);
      else why = "the channel is closed";
      break;
    case OP_OPEN:
      if (!request) why = "not in a handler";
      else if (*tx) why = "this call's channel to the caller is already open";
      else st = knit_request_open_channel(request, tx);
      break;
    case OP_TAKE:
      if (!request) why = "not in a handler";
      else if (*rx) why = "this call's channel was already taken";
      else st = knit_request_take_channel(request, rx);
      break;
  }
  if (why) {
    job->status = KNIT_INVALID_ARGUMENT;
    job->message = dup_cstr(why);
  } else {
    job->status = st;
    if (st != KNIT_OK) job->message = dup_cstr(knit_last_error_message());
  }
}

void job_deliver(napi_env env, addon_t *addon, item_t *item) {
  job_t *job = (job_t *)item;
  if (env) {
    if (job->status != KNIT_OK) {
      napi_reject_deferred(env, job->deferred, make_error(env, addon, job->status, job->message));
    } else if (job->op == OP_RECV && job->response) {
      napi_value msg = response_object(env, job->response);
      job->response = NULL; /* now owned by the Buffer */
      napi_resolve_deferred(env, job->deferred, msg);
    } else {
      napi_resolve_deferred(env, job->deferred, undefined(env));
    }
    addon_end(env, addon);
  }
  job_free(job);
}

void job_fail_now(napi_env env, addon_t *addon, job_t *job, knit_status code, const char *message) {
  job->status = code;
  free(job->message);
  job->message = dup_cstr(message);
  addon_begin(env, addon); /* job_deliver ends it */
  job_deliver(env, addon, &job->item);
}

/* --- host channel ends ---------------------------------------------------------------------- */

typedef struct chan {
  exec_t ex;
  addon_t *addon;
  knit_sender *tx;
  knit_receiver *rx;
  const knit_ticket *take_from; /* a stream: the ticket whose channel to take first */
  struct call *call;            /* armed once the channel is taken */
  knit_status take_status;      /* why there is no receiver, when taking failed */
  char *take_message;
  bool stop; /* under ex.mu: no more jobs; the thread ends the channel and frees this */
} chan_t;

/* What JavaScript holds: the channel until it is given up (then NULL: the thread may have
   freed it). Main thread only. */
typedef struct chan_box {
  chan_t *ch;
} chan_box_t;

static void *chan_thread(void *arg) {
  chan_t *ch = arg;
  if (ch->take_from) {
    /* Take the channel before the outcome is waited for (knit.h: a worker that fills the
       channel waits for the host to read it before it can finish the call). */
    knit_status st = knit_ticket_channel(ch->take_from, &ch->rx);
    if (st != KNIT_OK) {
      ch->rx = NULL;
      ch->take_status = st;
      ch->take_message = dup_cstr(knit_last_error_message());
    }
    call_arm(ch->call);
  }
  pthread_mutex_lock(&ch->ex.mu);
  for (;;) {
    job_t *job = exec_pop_locked(&ch->ex);
    if (!job) {
      if (ch->stop) break;
      pthread_cond_wait(&ch->ex.cv, &ch->ex.mu);
      continue;
    }
    pthread_mutex_unlock(&ch->ex.mu);
    if (job->op == OP_RECV && !ch->rx && ch->take_status != KNIT_OK) {
      job->status = ch->take_status;
      job->message = dup_cstr(ch->take_message);
    } else {
      job_run(job, &ch->tx, &ch->rx, NULL);
      if (job->op == OP_RECV && job->status != KNIT_OK && ch->rx) {
        /* The stream ended (END, abort, peer death): free the end now, before JavaScript
           hears of it, instead of when the Receiver is collected: its handle goes back at
           once. (libknit before a56f7b5 also refused a worker reopening the slot while the
           ended end was kept, CHAN-14.) Later receives repeat this outcome. */
        knit_receiver_free(ch->rx);
        ch->rx = NULL;
        ch->take_status = job->status;
        free(ch->take_message);
        ch->take_message = dup_cstr(job->message);
      }
    }
    if (!addon_post(ch->addon, &job->item)) job_deliver(NULL, ch->addon, &job->item);
    pthread_mutex_lock(&ch->ex.mu);
  }
  pthread_mutex_unlock(&ch->ex.mu);
  /* A sender not closed aborts the channel (CANCELLED); a receiver not read to its end too. */
  if (ch->tx) knit_sender_free(ch->tx);
  if (ch->rx) knit_receiver_free(ch->rx);
  exec_destroy(&ch->ex);
  free(ch->take_message);
  free(ch);
  return NULL;
}

static void chan_stop(chan_box_t *box) {
  chan_t *ch = box->ch;
  if (!ch) return;
  box->ch = NULL;
  pthread_mutex_lock(&ch->ex.mu);
  ch->stop = true;
  pthread_cond_broadcast(&ch->ex.cv);
  pthread_mutex_unlock(&ch->ex.mu);
}

static void chan_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  chan_stop(data);
  free(data);
}

static napi_value chan_wrap(napi_env env, addon_t *addon, chan_t *ch) {
  exec_init(&ch->ex);
  ch->addon = addon;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  int err = pthread_create(&thread, &attr, chan_thread, ch);
  pthread_attr_destroy(&attr);
  if (err) {
    if (ch->tx) knit_sender_free(ch->tx);
    if (ch->call) call_arm(ch->call); /* the ticket still completes */
    exec_destroy(&ch->ex);
    free(ch);
    napi_throw_error(env, NULL, "cannot start a channel thread");
    return NULL;
  }
  chan_box_t *box = malloc(sizeof *box);
  napi_value ext;
  if (box) box->ch = ch;
  if (!box || napi_create_external(env, box, chan_finalize, NULL, &ext) != napi_ok) {
    chan_box_t local = {ch};
    chan_stop(&local);
    free(box);
    napi_throw_error(env, NULL, "cannot wrap a channel");
    return NULL;
  }
  return ext;
}

napi_value chan_wrap_sender(napi_env env, addon_t *addon, knit_sender *tx) {
  chan_t *ch = calloc(1, sizeof *ch);
  if (!ch) {
    knit_sender_free(tx);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  ch->tx = tx;
  return chan_wrap(env, addon, ch);
}

napi_value chan_wrap_stream(napi_env env, addon_t *addon, const knit_ticket *ticket, struct call *call) {
  chan_t *ch = calloc(1, sizeof *ch);
  if (!ch) {
    call_arm(call);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  ch->take_from = ticket;
  ch->call = call;
  return chan_wrap(env, addon, ch);
}

static chan_box_t *get_chan(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a channel handle");
    return NULL;
  }
  return p;
}

/* chanOp(handle, op, data, contentType, code) -> Promise */
static napi_value js_chan_op(napi_env env, napi_callback_info info) {
  ARGS(env, info, 5);
  chan_box_t *box = get_chan(env, argv[0]);
  uint32_t op;
  if (!box || !get_u32(env, argv[1], &op, "an operation")) return NULL;
  if (op != OP_SEND && op != OP_TRY_SEND && op != OP_CLOSE && op != OP_ABORT && op != OP_RECV) {
    napi_throw_range_error(env, NULL, "not a host channel operation");
    return NULL;
  }
  napi_value promise;
  job_t *job = job_new(env, (job_op)op, argv[2], argv[3], argv[4], &promise);
  if (!job) return NULL;
  chan_t *ch = box->ch;
  if (!ch) {
    job_fail_now(env, addon, job, KNIT_INVALID_ARGUMENT, "the channel was disposed of");
    return promise;
  }
  addon_begin(env, addon);
  pthread_mutex_lock(&ch->ex.mu);
  exec_push_locked(&ch->ex, job);
  pthread_mutex_unlock(&ch->ex.mu);
  return promise;
}

/* chanDispose(handle): the end is given up (freed on its thread once its jobs ran). */
static napi_value js_chan_dispose(napi_env env, napi_callback_info info) {
  ARGS(env, info, 1);
  (void)addon;
  chan_box_t *box = get_chan(env, argv[0]);
  if (!box) return NULL;
  chan_stop(box);
  return undefined(env);
}

void chan_init(napi_env env, napi_value exports) {
  EXPORT_FN(env, exports, "chanOp", js_chan_op);
  EXPORT_FN(env, exports, "chanDispose", js_chan_dispose);
}
