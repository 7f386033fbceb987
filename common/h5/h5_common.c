/* HDF5 names, types, attributes and error text. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "h5.h"
#include "h5_internal.h"
#include "util.h"

void ck_h5_init(void)
{
  static int done;

  if (!done) {
    H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* libhdf5 keeps freed objects on free lists of its own, unbounded by default: a
     * walk over 200,000 datasets left ~200 MB there. Small limits hand freed memory
     * back to malloc, so memory follows what is live, not how many objects passed. */
    H5set_free_list_limits(1 << 20, 1 << 18, 1 << 20, 1 << 18, 1 << 20, 1 << 18);
    done = 1;
  }
}

static void cache_size(H5AC_cache_config_t *mdc, size_t size)
{
  mdc->set_initial_size = 1;
  mdc->initial_size = size;
  mdc->min_size = size;
  mdc->max_size = size;
}

int ck_h5_limit_cache(hid_t fapl)
{
  H5AC_cache_config_t mdc;

  mdc.version = H5AC__CURR_CACHE_CONFIG_VERSION;
  if (H5Pget_mdc_config(fapl, &mdc) < 0)
    return -1;
  cache_size(&mdc, CK_H5_CACHE);
  return H5Pset_mdc_config(fapl, &mdc) < 0 ? -1 : 0;
}

int ck_h5_set_cache(hid_t file, size_t size)
{
  H5AC_cache_config_t mdc;

  mdc.version = H5AC__CURR_CACHE_CONFIG_VERSION;
  if (H5Fget_mdc_config(file, &mdc) < 0)
    return -1;
  cache_size(&mdc, size);
  return H5Fset_mdc_config(file, &mdc) < 0 ? -1 : 0;
}

static int unreserved(uint8_t c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-' || c == '~';
}

char *ck_h5_quote(const uint8_t *name, size_t len)
{
  char *out = malloc(3 * len + 1), *p = out;

  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < len; i++) {
    if (unreserved(name[i])) {
      *p++ = (char)name[i];
    } else {
      sprintf(p, "%%%02X", name[i]);
      p += 3;
    }
  }
  *p = 0;
  return out;
}


int ck_h5_unquote(const char *s, uint8_t **out, size_t *outlen)
{
  size_t len = strlen(s), n = 0;
  uint8_t *o = malloc(len + 1);

  if (o == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < len; i++) {
    /* Like Python's unquote, a '%' not followed by two hex digits stays as is. */
    if (s[i] == '%' && i + 2 < len && ck_hexval(s[i + 1]) >= 0 && ck_hexval(s[i + 2]) >= 0) {
      o[n++] = (uint8_t)(ck_hexval(s[i + 1]) * 16 + ck_hexval(s[i + 2]));
      i += 2;
    } else {
      o[n++] = (uint8_t)s[i];
    }
  }
  o[n] = 0;
  *out = o;
  *outlen = n;
  return 0;
}

int ck_h5_parse_compression(const char *s, int *kind, int *level)
{
  *level = 4;
  if (strcmp(s, "none") == 0) {
    *kind = CK_H5_NONE;
    return 0;
  }
  if (strcmp(s, "lz4") == 0) {
    *kind = CK_H5_LZ4;
    return 0;
  }
  if (strncmp(s, "gzip", 4) == 0 && (s[4] == 0 || (s[4] == ':' && s[5] >= '0' && s[5] <= '9' && s[6] == 0))) {
    *kind = CK_H5_GZIP;
    if (s[4] == ':')
      *level = s[5] - '0';
    return 0;
  }
  return CK_EINVAL;
}

static hid_t half_type(void)
{
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);

  /* h5py's IEEE_F16LE: sign at 15, exponent 10..14, mantissa 0..9, bias 15 */
  H5Tset_fields(t, 15, 10, 5, 0, 10);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, 15);
  return t;
}

hid_t ck_h5_bool_type(void)
{
  hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
  int8_t v = 0;

  H5Tenum_insert(t, "FALSE", &v);
  v = 1;
  H5Tenum_insert(t, "TRUE", &v);
  return t;
}

static hid_t complex_type(hid_t part, size_t size)
{
  hid_t t = H5Tcreate(H5T_COMPOUND, 2 * size);

  H5Tinsert(t, "r", 0, part);
  H5Tinsert(t, "i", size, part);
  return t;
}

hid_t ck_h5_type_for(int dtype)
{
  switch (ck_dtype_base(dtype)) {
  case CK_DT_FLOAT: return H5Tcopy(H5T_IEEE_F32LE);
  case CK_DT_DOUBLE: return H5Tcopy(H5T_IEEE_F64LE);
  case CK_DT_INT8: case CK_DT_QINT8: return H5Tcopy(H5T_STD_I8LE);
  case CK_DT_INT16: case CK_DT_QINT16: case CK_DT_BFLOAT16: return H5Tcopy(H5T_STD_I16LE);
  case CK_DT_INT32: case CK_DT_QINT32: return H5Tcopy(H5T_STD_I32LE);
  case CK_DT_INT64: return H5Tcopy(H5T_STD_I64LE);
  case CK_DT_UINT8: case CK_DT_QUINT8: case CK_DT_FLOAT8_E5M2: case CK_DT_FLOAT8_E4M3FN:
    return H5Tcopy(H5T_STD_U8LE);
  case CK_DT_UINT16: case CK_DT_QUINT16: return H5Tcopy(H5T_STD_U16LE);
  case CK_DT_UINT32: return H5Tcopy(H5T_STD_U32LE);
  case CK_DT_UINT64: return H5Tcopy(H5T_STD_U64LE);
  case CK_DT_BOOL: return ck_h5_bool_type();
  case CK_DT_HALF: return half_type();
  case CK_DT_COMPLEX64: return complex_type(H5T_IEEE_F32LE, 4);
  case CK_DT_COMPLEX128: return complex_type(H5T_IEEE_F64LE, 8);
  case CK_DT_STRING: case CK_DT_VARIANT: return H5Tvlen_create(H5T_STD_U8LE);
  default: return H5I_INVALID_HID;
  }
}

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
  char *buf = data;

  /* keep the innermost message: HDF5 lists the stack outermost first */
  (void)n;
  if (e->desc && *e->desc)
    snprintf(buf, 256, "%s", e->desc);
  return 0;
}

int ck_h5_err(struct ck_err *err, int code, const char *fmt, ...)
{
  char head[CK_ERR_MSG_MAX], detail[256] = "";
  va_list ap;

  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, detail);
  H5Eclear2(H5E_DEFAULT);
  va_start(ap, fmt);
  vsnprintf(head, sizeof(head), fmt, ap);
  va_end(ap);
  if (detail[0])
    return ck_err_set(err, code, "%.300s (HDF5: %.180s)", head, detail);
  return ck_err_set(err, code, "%s", head);
}

int ck_h5_attr_new(hid_t obj, const char *name, hid_t type, hid_t space, const void *value)
{
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  int rc = -1;

  if (a >= 0) {
    rc = H5Awrite(a, type, value) < 0 ? -1 : 0;
    H5Aclose(a);
  }
  return rc;
}

static int put_attr(hid_t obj, const char *name, hid_t type, const void *value)
{
  hid_t space = H5Screate(H5S_SCALAR);
  int rc;

  if (H5Aexists(obj, name) > 0)
    H5Adelete(obj, name);
  rc = ck_h5_attr_new(obj, name, type, space, value);
  H5Sclose(space);
  return rc;
}

hid_t ck_h5_str_type(void)
{
  hid_t t = H5Tcopy(H5T_C_S1);

  /* a variable-length UTF-8 string: what h5py writes for a Python str */
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

int ck_h5_attr_str(hid_t obj, const char *name, const char *value)
{
  hid_t t = ck_h5_str_type();
  int rc = put_attr(obj, name, t, &value);

  H5Tclose(t);
  return rc;
}

int ck_h5_attr_u32(hid_t obj, const char *name, uint32_t value)
{
  return put_attr(obj, name, H5T_STD_U32LE, &value) == 0 ? 0 : -1;
}

int ck_h5_attr_u64(hid_t obj, const char *name, uint64_t value)
{
  return put_attr(obj, name, H5T_STD_U64LE, &value) == 0 ? 0 : -1;
}

int ck_h5_attr_i32(hid_t obj, const char *name, int32_t value)
{
  return put_attr(obj, name, H5T_STD_I32LE, &value) == 0 ? 0 : -1;
}

int ck_h5_attr_bool(hid_t obj, const char *name, int value)
{
  hid_t t = ck_h5_bool_type();
  int8_t v = value ? 1 : 0;
  int rc = put_attr(obj, name, t, &v);

  H5Tclose(t);
  return rc;
}

/* Strings are copied into s truncated to slen - 1 bytes; only one element is ever read,
 * into buffers of our size, whatever the attribute's dataspace declares. */
static int read_one_str(hid_t a, hid_t t, struct ck_h5_attr *v, char *s, size_t slen)
{
  hid_t mt = H5Tcopy(H5T_C_S1);
  int rc = -1;

  H5Tset_cset(mt, H5Tget_cset(t));
  if (H5Tis_variable_str(t) > 0) {
    char *p = NULL;
    H5Tset_size(mt, H5T_VARIABLE);
    if (H5Aread(a, mt, &p) >= 0 && p) {
      v->truncated = strlen(p) >= slen;
      snprintf(s, slen, "%s", p);
      rc = 0;
    }
    if (p)
      H5free_memory(p);
  } else {
    size_t sz = H5Tget_size(t);
    char *tmp = sz > 0 && sz <= CK_H5_ATTR_STR_MAX ? calloc(1, sz + 1) : NULL;
    H5Tset_size(mt, sz ? sz : 1);
    H5Tset_strpad(mt, H5T_STR_NULLPAD);
    if (sz > CK_H5_ATTR_STR_MAX) { /* not read: reported as too long, not as absent */
      v->truncated = 1;
      s[0] = 0;
      rc = 0;
    } else if (tmp && H5Aread(a, mt, tmp) >= 0) {
      v->truncated = strlen(tmp) >= slen;
      snprintf(s, slen, "%s", tmp);
      rc = 0;
    }
    free(tmp);
  }
  H5Tclose(mt);
  return rc;
}

static void read_one(hid_t a, struct ck_h5_attr *v, char *s, size_t slen)
{
  hid_t t = H5Aget_type(a), space = H5Aget_space(a);
  H5T_class_t c = H5Tget_class(t);

  v->kind = CK_H5A_OTHER;
  if (t < 0 || space < 0 || H5Sget_simple_extent_npoints(space) != 1) {
    /* arrays (h5py's [0, 1, 2]), empty attributes: not a value we interpret */
  } else if (c == H5T_ENUM && H5Tget_size(t) == 1) {
    int8_t raw = 0; /* h5py's bool: an enum over int8, FALSE = 0, TRUE = 1 */
    if (H5Aread(a, t, &raw) >= 0) {
      v->kind = CK_H5A_INT;
      v->i = raw;
    }
  } else if (c == H5T_INTEGER) {
    if (H5Aread(a, H5T_NATIVE_LLONG, &v->i) >= 0)
      v->kind = CK_H5A_INT;
  } else if (c == H5T_FLOAT) {
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v->d) >= 0)
      v->kind = CK_H5A_FLOAT;
  } else if (c == H5T_STRING && s != NULL && slen > 0) {
    if (read_one_str(a, t, v, s, slen) == 0)
      v->kind = CK_H5A_STR;
  }
  if (v->kind == CK_H5A_OTHER)
    H5Eclear2(H5E_DEFAULT);
  if (space >= 0)
    H5Sclose(space);
  if (t >= 0)
    H5Tclose(t);
}

int ck_h5_attr_read(hid_t obj, const char *name, struct ck_h5_attr *v, char *s, size_t slen)
{
  hid_t a;

  memset(v, 0, sizeof(*v));
  if (s && slen)
    s[0] = 0;
  v->kind = CK_H5A_ABSENT;
  if ((a = H5Aopen(obj, name, H5P_DEFAULT)) < 0) { /* absent: one lookup, not an exists and an open */
    H5Eclear2(H5E_DEFAULT);
    return CK_H5A_ABSENT;
  }
  read_one(a, v, s, slen);
  H5Aclose(a);
  return v->kind;
}

int ck_h5_attr_get_str(hid_t obj, const char *name, char *buf, size_t len)
{
  struct ck_h5_attr v;

  return ck_h5_attr_read(obj, name, &v, buf, len) == CK_H5A_STR ? 0 : -1;
}

int ck_h5_attr_get_int(hid_t obj, const char *name, long long *out)
{
  struct ck_h5_attr v;

  switch (ck_h5_attr_read(obj, name, &v, NULL, 0)) {
  case CK_H5A_INT:
    *out = v.i;
    return 0;
  case CK_H5A_FLOAT:
    if (!(v.d >= -9.2e18 && v.d <= 9.2e18)) /* NaN and out of range: no integer */
      return -1;
    *out = (long long)v.d;
    return 0;
  default:
    return -1;
  }
}

/* A bounded scanner: no allocation, every index checked against len. */
int ck_json_first_string(const char *json, size_t len, const char *key, char *out, size_t outlen)
{
  size_t klen = strlen(key), i = 0;

  while (i + klen + 2 <= len) {
    if (json[i] == '"' && i + 1 + klen < len && memcmp(json + i + 1, key, klen) == 0 && json[i + 1 + klen] == '"') {
      size_t j = i + klen + 2, n = 0;
      while (j < len && (json[j] == ' ' || json[j] == ':' || json[j] == '\t' || json[j] == '\n'))
        j++;
      if (j >= len || json[j] != '[')
        return -1;
      j++;
      while (j < len && (json[j] == ' ' || json[j] == '\t' || json[j] == '\n'))
        j++;
      if (j >= len || json[j] != '"')
        return -1;
      j++;
      while (j < len && json[j] != '"') {
        if (json[j] == '\\')
          return -1; /* dtype names never need escapes */
        if (n + 1 < outlen)
          out[n++] = json[j];
        j++;
      }
      if (j >= len || outlen == 0)
        return -1;
      out[n] = 0;
      return 0;
    }
    i++;
  }
  return -1;
}
