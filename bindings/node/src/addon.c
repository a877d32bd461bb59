/* Module init, the thread-safe function that carries every result to the main thread, and
   small helpers shared by the other parts (see addon.h). */
#include "addon.h"

#include <stdlib.h>
#include <string.h>

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  item_t *item = data;
  if (item) item->deliver(env, (addon_t *)context, item);
}

bool addon_post(addon_t *addon, item_t *item) {
  return napi_call_threadsafe_function(addon->tsfn, item, napi_tsfn_nonblocking) == napi_ok;
}

void addon_begin(napi_env env, addon_t *addon) {
  if (addon->pending++ == 0) napi_ref_threadsafe_function(env, addon->tsfn);
}

void addon_end(napi_env env, addon_t *addon) {
  if (addon->pending > 0 && --addon->pending == 0) napi_unref_threadsafe_function(env, addon->tsfn);
}

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

napi_value make_error(napi_env env, addon_t *addon, knit_status code, const char *message) {
  napi_value args[2], fn, result = NULL, global;
  napi_create_uint32(env, code, &args[0]);
  napi_create_string_utf8(env, message ? message : "", NAPI_AUTO_LENGTH, &args[1]);
  if (addon->make_error && napi_get_reference_value(env, addon->make_error, &fn) == napi_ok && fn) {
    napi_get_global(env, &global);
    if (napi_call_function(env, global, fn, 2, args, &result) == napi_ok) return result;
  }
  /* No factory (or it threw): a plain Error carrying the code. */
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  napi_create_error(env, NULL, args[1], &result);
  napi_set_named_property(env, result, "code", args[0]);
  return result;
}

napi_value throw_knit(napi_env env, addon_t *addon, knit_status code, const char *message) {
  napi_throw(env, make_error(env, addon, code, message));
  return NULL;
}

napi_value throw_last(napi_env env, addon_t *addon, knit_status code) {
  /* Copy first: creating the error calls JavaScript, which may call Knit again. */
  char *message = dup_cstr(knit_last_error_message());
  throw_knit(env, addon, code, message);
  free(message);
  return NULL;
}

char *dup_cstr(const char *s) {
  if (!s) s = "";
  size_t n = strlen(s) + 1;
  char *out = malloc(n);
  if (out) memcpy(out, s, n);
  return out;
}

bool get_string(napi_env env, napi_value v, char *out, size_t cap, const char *what) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, what);
    return false;
  }
  if (len + 1 > cap) {
    napi_throw_range_error(env, NULL, what);
    return false;
  }
  napi_get_value_string_utf8(env, v, out, cap, &len);
  return true;
}

char *dup_string(napi_env env, napi_value v, const char *what) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, what);
    return NULL;
  }
  char *out = malloc(len + 1);
  if (!out) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, v, out, len + 1, &len);
  return out;
}

bool get_bytes(napi_env env, napi_value v, const uint8_t **data, size_t *len) {
  bool is = false;
  void *p = NULL;
  size_t n = 0;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count = 0, offset = 0;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &offset) != napi_ok) return false;
    size_t size = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: size = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: size = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: size = 8; break;
      default: size = 1;
    }
    n = count * size;
  } else if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    napi_value ab;
    size_t offset = 0;
    if (napi_get_dataview_info(env, v, &n, &p, &ab, &offset) != napi_ok) return false;
  } else if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    if (napi_get_arraybuffer_info(env, v, &p, &n) != napi_ok) return false;
  } else {
    return false;
  }
  *data = n ? p : NULL;
  *len = n;
  return true;
}

bool get_u32(napi_env env, napi_value v, uint32_t *out, const char *what) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
    napi_throw_range_error(env, NULL, what);
    return false;
  }
  *out = (uint32_t)d;
  return true;
}

bool get_ns(napi_env env, napi_value v, uint64_t *out, const char *what) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0)) {
    napi_throw_range_error(env, NULL, what);
    return false;
  }
  /* 2^64 and more (Infinity included) means no bound. */
  *out = d >= 18446744073709551615.0 ? KNIT_FOREVER : (uint64_t)d;
  return true;
}

static void free_response(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  knit_response_free(hint);
}

napi_value response_buffer(napi_env env, knit_response *response, uint32_t *content_type) {
  const uint8_t *data = NULL;
  size_t len = 0;
  uint32_t ct = 0;
  napi_value buf = NULL;
  knit_response_get(response, &data, &len, &ct);
  if (content_type) *content_type = ct;
  /* Zero copy: the Buffer is the response's own bytes, freed with it when collected. */
  if (len > 0 && data &&
      napi_create_external_buffer(env, len, (void *)data, free_response, response, &buf) == napi_ok)
    return buf;
  /* Empty, or external buffers refused: a copy, and the response is freed now. */
  napi_create_buffer_copy(env, len, data, NULL, &buf);
  knit_response_free(response);
  return buf;
}

napi_value response_object(napi_env env, knit_response *response) {
  uint32_t ct = 0;
  napi_value obj, data = response_buffer(env, response, &ct), ctv;
  napi_create_object(env, &obj);
  napi_create_uint32(env, ct, &ctv);
  napi_set_named_property(env, obj, "data", data);
  napi_set_named_property(env, obj, "contentType", ctv);
  return obj;
}

/* --- functions without a handle ------------------------------------------------------------- */

static napi_value js_set_error_factory(napi_env env, napi_callback_info info) {
  ARGS(env, info, 1);
  if (addon->make_error) napi_delete_reference(env, addon->make_error);
  addon->make_error = NULL;
  napi_create_reference(env, argv[0], 1, &addon->make_error);
  return undefined(env);
}

static napi_value js_version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_string_utf8(env, knit_version_string(), NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value js_version_number(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_uint32(env, knit_version(), &v);
  return v;
}

static napi_value js_status_name(napi_env env, napi_callback_info info) {
  ARGS(env, info, 1);
  uint32_t code;
  if (!get_u32(env, argv[0], &code, "a status is a u32")) return NULL;
  napi_value v;
  napi_create_string_utf8(env, knit_status_name(code), NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value js_handle_count(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_double(env, (double)knit_handle_count(), &v);
  return v;
}

static napi_value js_monotonic_ns(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_bigint_uint64(env, knit_monotonic_ns(), &v);
  return v;
}

static napi_value js_pending(napi_env env, napi_callback_info info) {
  ARGS(env, info, 1);
  napi_value v;
  napi_create_uint32(env, addon->pending, &v);
  return v;
}

/* regionAttach(name, timeoutNs) -> {regionLen, name, ...}: attach, read the header, detach
   (used by the conformance agent to validate images with libknit's own checks). */
static napi_value js_region_info(napi_env env, napi_callback_info info) {
  ARGS(env, info, 2);
  char name[256];
  uint64_t timeout;
  if (!get_string(env, argv[0], name, sizeof name, "a region name") ||
      !get_ns(env, argv[1], &timeout, "a timeout in ns"))
    return NULL;
  knit_region *region = NULL;
  knit_status st = knit_region_attach(name, timeout, &region);
  if (st != KNIT_OK) return throw_last(env, addon, st);
  knit_region_info ri;
  memset(&ri, 0, sizeof ri);
  ri.struct_size = sizeof ri;
  st = knit_region_get_info(region, &ri);
  if (st != KNIT_OK) {
    throw_last(env, addon, st);
    knit_region_free(region);
    return NULL;
  }
  knit_region_free(region);
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, ri.name, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "name", v);
  napi_create_double(env, (double)ri.region_len, &v);
  napi_set_named_property(env, obj, "regionLen", v);
  napi_create_uint32(env, ri.poison_code, &v);
  napi_set_named_property(env, obj, "poisonCode", v);
  return obj;
}

static void addon_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  addon_t *addon = data;
  if (addon->make_error) napi_delete_reference(env, addon->make_error);
  free(addon);
}

static napi_value init(napi_env env, napi_value exports) {
  addon_t *addon = calloc(1, sizeof *addon);
  if (!addon) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, "knit", NAPI_AUTO_LENGTH, &name);
  /* Unbounded queue: posting never blocks a Knit thread. */
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, addon, call_js,
                                      &addon->tsfn) != napi_ok) {
    free(addon);
    napi_throw_error(env, NULL, "cannot create the thread-safe function");
    return NULL;
  }
  napi_unref_threadsafe_function(env, addon->tsfn);
  napi_set_instance_data(env, addon, addon_finalize, NULL);
  EXPORT_FN(env, exports, "setErrorFactory", js_set_error_factory);
  EXPORT_FN(env, exports, "version", js_version);
  EXPORT_FN(env, exports, "versionNumber", js_version_number);
  EXPORT_FN(env, exports, "statusName", js_status_name);
  EXPORT_FN(env, exports, "handleCount", js_handle_count);
  EXPORT_FN(env, exports, "monotonicNs", js_monotonic_ns);
  EXPORT_FN(env, exports, "pendingOperations", js_pending);
  EXPORT_FN(env, exports, "regionInfo", js_region_info);
  host_init(env, exports);
  serve_init(env, exports);
  chan_init(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
