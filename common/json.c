/* A bounded JSON tokenizer (RFC 8259) and a small JSON writer.
 *
 * DESIGN: one recursive-descent pass over the text fills a token array whose size the
 * caller capped; nothing else is allocated while parsing. Recursion depth is capped, so
 * hostile nesting cannot exhaust the stack. Strings stay escaped in the text; they are
 * unescaped on demand (ck_json_str), which keeps the pass allocation-free. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
  const char *s;
  size_t len, pos;
  struct ck_jtok *t;
  size_t n, max;
  unsigned depth, max_depth;
  struct ck_err *err;
};

static int fail(struct parser *p, int code, const char *what)
{
  return ck_err_set(p->err, code, "at byte %zu: %s", p->pos, what);
}

static void skip_ws(struct parser *p)
{
  while (p->pos < p->len) {
    char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      break;
    p->pos++;
  }
}

static int new_tok(struct parser *p, int type, size_t *idx)
{
  if (p->n >= p->max)
    return fail(p, CK_ELIMIT, "too many JSON values");
  *idx = p->n++;
  memset(&p->t[*idx], 0, sizeof(p->t[*idx]));
  p->t[*idx].type = (uint8_t)type;
  p->t[*idx].start = (uint32_t)p->pos;
  return 0;
}

/* Length of a valid UTF-8 sequence starting at s (n bytes available), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
  unsigned c = s[0];
  size_t k;
  unsigned min, cp;

  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf) { k = 2; min = 0x80; cp = c & 0x1f; }
  else if (c >= 0xe0 && c <= 0xef) { k = 3; min = 0x800; cp = c & 0x0f; }
  else if (c >= 0xf0 && c <= 0xf4) { k = 4; min = 0x10000; cp = c & 0x07; }
  else return 0;
  if (n < k)
    return 0;
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return k;
}

static int parse_string(struct parser *p)
{
  size_t idx;
  int rc;

  p->pos++; /* opening quote */
  if ((rc = new_tok(p, CK_J_STRING, &idx)) != 0)
    return rc;
  while (p->pos < p->len) {
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c == '"') {
      p->t[idx].end = (uint32_t)p->pos;
      p->t[idx].next = (uint32_t)p->n;
      p->pos++;
      return 0;
    }
    if (c < 0x20)
      return fail(p, CK_EFORMAT, "control character in a string");
    if (c == '\\') {
      p->t[idx].escaped = 1;
      if (p->pos + 1 >= p->len)
        break;
      c = (unsigned char)p->s[p->pos + 1];
      if (c == 'u') {
        if (p->pos + 6 > p->len)
          break;
        for (int i = 2; i < 6; i++)
          if (!strchr("0123456789abcdefABCDEF", p->s[p->pos + i]) || p->s[p->pos + i] == 0)
            return fail(p, CK_EFORMAT, "bad \\u escape");
        p->pos += 6;
      } else if (strchr("\"\\/bfnrt", c) && c != 0) {
        p->pos += 2;
      } else {
        return fail(p, CK_EFORMAT, "bad escape in a string");
      }
      continue;
    }
    size_t k = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
    if (k == 0)
      return fail(p, CK_EFORMAT, "invalid UTF-8 in a string");
    p->pos += k;
  }
  return fail(p, CK_EFORMAT, "unterminated string");
}

static int parse_number(struct parser *p)
{
  size_t idx, st = p->pos;
  int rc;

  if ((rc = new_tok(p, CK_J_NUMBER, &idx)) != 0)
    return rc;
  if (p->pos < p->len && p->s[p->pos] == '-')
    p->pos++;
  if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
    return fail(p, CK_EFORMAT, "bad number");
  if (p->s[p->pos] == '0')
    p->pos++;
  else
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
      p->pos++;
  if (p->pos < p->len && p->s[p->pos] == '.') {
    p->pos++;
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
      return fail(p, CK_EFORMAT, "bad number");
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
      p->pos++;
  }
  if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
    p->pos++;
    if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
      p->pos++;
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
      return fail(p, CK_EFORMAT, "bad number");
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
      p->pos++;
  }
  (void)st;
  p->t[idx].end = (uint32_t)p->pos;
  p->t[idx].next = (uint32_t)p->n;
  return 0;
}

static int parse_literal(struct parser *p, const char *word, int type)
{
  size_t idx, wl = strlen(word);
  int rc;

  if (p->len - p->pos < wl || memcmp(p->s + p->pos, word, wl) != 0)
    return fail(p, CK_EFORMAT, "unexpected character");
  if ((rc = new_tok(p, type, &idx)) != 0)
    return rc;
  p->pos += wl;
  p->t[idx].end = (uint32_t)p->pos;
  p->t[idx].next = (uint32_t)p->n;
  return 0;
}

static int parse_value(struct parser *p);

/* An object or an array: members (key, value) or elements, comma-separated. */
static int parse_container(struct parser *p, int type)
{
  char close = type == CK_J_OBJECT ? '}' : ']';
  size_t idx;
  int rc;

  if (++p->depth > p->max_depth)
    return fail(p, CK_ELIMIT, "JSON nested too deeply");
  if ((rc = new_tok(p, type, &idx)) != 0)
    return rc;
  p->pos++;
  skip_ws(p);
  if (p->pos < p->len && p->s[p->pos] == close)
    goto done;
  for (;;) {
    if (type == CK_J_OBJECT) {
      skip_ws(p);
      if (p->pos >= p->len || p->s[p->pos] != '"')
        return fail(p, CK_EFORMAT, "expected a string key");
      if ((rc = parse_string(p)) != 0)
        return rc;
      skip_ws(p);
      if (p->pos >= p->len || p->s[p->pos] != ':')
        return fail(p, CK_EFORMAT, "expected ':'");
      p->pos++;
    }
    if ((rc = parse_value(p)) != 0)
      return rc;
    if (p->t[idx].size == UINT32_MAX)
      return fail(p, CK_ELIMIT, "too many members");
    p->t[idx].size++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ',') {
      p->pos++;
      continue;
    }
    if (p->pos < p->len && p->s[p->pos] == close)
      break;
    return fail(p, CK_EFORMAT, type == CK_J_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'");
  }
done:
  p->pos++;
  p->t[idx].end = (uint32_t)p->pos;
  p->t[idx].next = (uint32_t)p->n;
  p->depth--;
  return 0;
}

static int parse_value(struct parser *p)
{
  skip_ws(p);
  if (p->pos >= p->len)
    return fail(p, CK_EFORMAT, "unexpected end of JSON");
  switch (p->s[p->pos]) {
  case '{': return parse_container(p, CK_J_OBJECT);
  case '[': return parse_container(p, CK_J_ARRAY);
  case '"': return parse_string(p);
  case 't': return parse_literal(p, "true", CK_J_TRUE);
  case 'f': return parse_literal(p, "false", CK_J_FALSE);
  case 'n': return parse_literal(p, "null", CK_J_NULL);
  default: return parse_number(p);
  }
}

int ck_json_parse(const char *s, size_t len, size_t max_tokens, unsigned max_depth, struct ck_json *out,
                  struct ck_err *err)
{
  struct parser p = { .s = s, .len = len, .max_depth = max_depth, .err = err };
  int rc;

  memset(out, 0, sizeof(*out));
  if (len >= UINT32_MAX)
    return ck_err_set(err, CK_ELIMIT, "JSON text of %zu bytes is too long", len);
  /* A value needs at least one byte, and a token per byte bounds the array. */
  p.max = max_tokens < len + 1 ? max_tokens : len + 1;
  if (p.max == 0 || (p.t = malloc(p.max * sizeof(*p.t))) == NULL)
    return p.max == 0 ? ck_err_set(err, CK_ELIMIT, "no JSON value allowed") : ck_err_set(err, -ENOMEM, "out of memory");
  if ((rc = parse_value(&p)) != 0)
    goto out;
  skip_ws(&p);
  if (p.pos != len) {
    rc = fail(&p, CK_EFORMAT, "trailing bytes after the JSON value");
    goto out;
  }
  out->s = s;
  out->len = len;
  out->t = p.t;
  out->n = p.n;
  p.t = NULL;
out:
  free(p.t);
  return rc;
}

void ck_json_free(struct ck_json *j)
{
  if (j != NULL) {
    free(j->t);
    j->t = NULL;
    j->n = 0;
  }
}

/* Decode string token tok into dst (at least its escaped length + 1 bytes). */
static int unescape(const struct ck_json *j, size_t tok, char *dst, size_t *outlen, int nul_ok)
{
  const struct ck_jtok *t = &j->t[tok];
  size_t o = 0;

  for (size_t i = t->start; i < t->end; i++) {
    unsigned cp;
    char c = j->s[i];
    if (c != '\\') {
      dst[o++] = c;
      continue;
    }
    c = j->s[++i];
    switch (c) {
    case 'b': dst[o++] = '\b'; continue;
    case 'f': dst[o++] = '\f'; continue;
    case 'n': dst[o++] = '\n'; continue;
    case 'r': dst[o++] = '\r'; continue;
    case 't': dst[o++] = '\t'; continue;
    case 'u': break;
    default: dst[o++] = c; continue;
    }
    cp = (unsigned)strtoul((char[5]){ j->s[i + 1], j->s[i + 2], j->s[i + 3], j->s[i + 4], 0 }, NULL, 16);
    i += 4;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 6 < t->end + 0u && j->s[i + 1] == '\\' && j->s[i + 2] == 'u') {
      unsigned lo = (unsigned)strtoul((char[5]){ j->s[i + 3], j->s[i + 4], j->s[i + 5], j->s[i + 6], 0 }, NULL, 16);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i += 6;
      }
    }
    if (cp >= 0xd800 && cp <= 0xdfff)
      return CK_EFORMAT; /* a lone surrogate is no character */
    if (cp == 0 && !nul_ok)
      return CK_EFORMAT;
    if (cp < 0x80) {
      dst[o++] = (char)cp;
    } else if (cp < 0x800) {
      dst[o++] = (char)(0xc0 | (cp >> 6));
      dst[o++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      dst[o++] = (char)(0xe0 | (cp >> 12));
      dst[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
      dst[o++] = (char)(0x80 | (cp & 0x3f));
    } else {
      dst[o++] = (char)(0xf0 | (cp >> 18));
      dst[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
      dst[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
      dst[o++] = (char)(0x80 | (cp & 0x3f));
    }
  }
  dst[o] = 0;
  *outlen = o;
  return 0;
}

int ck_json_str(const struct ck_json *j, size_t tok, int nul_ok, char **out, size_t *len)
{
  const struct ck_jtok *t;
  size_t n;
  char *d;
  int rc;

  *out = NULL;
  if (tok >= j->n || j->t[tok].type != CK_J_STRING)
    return CK_EFORMAT;
  t = &j->t[tok];
  if ((d = malloc((size_t)(t->end - t->start) + 1)) == NULL)
    return -ENOMEM;
  if ((rc = unescape(j, tok, d, &n, nul_ok)) != 0) {
    free(d);
    return rc;
  }
  *out = d;
  if (len)
    *len = n;
  return 0;
}

int ck_json_streq(const struct ck_json *j, size_t tok, const char *s)
{
  const struct ck_jtok *t;
  size_t sl = strlen(s), n;
  char *d;
  int eq;

  if (tok >= j->n || j->t[tok].type != CK_J_STRING)
    return 0;
  t = &j->t[tok];
  if (!t->escaped)
    return t->end - t->start == sl && memcmp(j->s + t->start, s, sl) == 0;
  if (ck_json_str(j, tok, 1, &d, &n) != 0)
    return 0;
  eq = n == sl && memcmp(d, s, n) == 0;
  free(d);
  return eq;
}

size_t ck_json_get(const struct ck_json *j, size_t obj, const char *key)
{
  size_t k;

  if (obj >= j->n || j->t[obj].type != CK_J_OBJECT)
    return 0;
  k = obj + 1;
  for (uint32_t m = 0; m < j->t[obj].size; m++) {
    if (ck_json_streq(j, k, key))
      return k + 1;
    k = j->t[k + 1].next;
  }
  return 0;
}

/* Copy a number token into buf; CK_EFORMAT if not a number or too long. */
static int num_text(const struct ck_json *j, size_t tok, char *buf, size_t cap)
{
  size_t n;

  if (tok >= j->n || j->t[tok].type != CK_J_NUMBER)
    return CK_EFORMAT;
  n = j->t[tok].end - j->t[tok].start;
  if (n >= cap)
    return CK_EFORMAT;
  memcpy(buf, j->s + j->t[tok].start, n);
  buf[n] = 0;
  return 0;
}

int ck_json_i64(const struct ck_json *j, size_t tok, int64_t *v)
{
  char buf[32], *end;
  long long x;

  if (num_text(j, tok, buf, sizeof(buf)) != 0 || strpbrk(buf, ".eE") != NULL)
    return CK_EFORMAT;
  errno = 0;
  x = strtoll(buf, &end, 10);
  if (errno != 0 || *end != 0)
    return CK_EFORMAT;
  *v = x;
  return 0;
}

int ck_json_u64(const struct ck_json *j, size_t tok, uint64_t *v)
{
  char buf[32], *end;
  unsigned long long x;

  if (num_text(j, tok, buf, sizeof(buf)) != 0 || strpbrk(buf, ".eE-") != NULL)
    return CK_EFORMAT;
  errno = 0;
  x = strtoull(buf, &end, 10);
  if (errno != 0 || *end != 0)
    return CK_EFORMAT;
  *v = x;
  return 0;
}

int ck_json_double(const struct ck_json *j, size_t tok, double *v)
{
  char buf[400], *end;

  if (num_text(j, tok, buf, sizeof(buf)) != 0)
    return CK_EFORMAT;
  *v = strtod(buf, &end);
  return *end == 0 ? 0 : CK_EFORMAT;
}

/* ---- writing ---- */

void ck_sbuf_add(struct ck_sbuf *b, const char *s, size_t n)
{
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *p;
    while (cap < b->len + n + 1)
      cap *= 2;
    if ((p = realloc(b->p, cap)) == NULL) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

void ck_sbuf_addf(struct ck_sbuf *b, const char *fmt, ...)
{
  char tmp[256];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(tmp)) {
    b->oom = 1; /* callers format numbers only */
    return;
  }
  ck_sbuf_add(b, tmp, (size_t)n);
}

void ck_sbuf_json_str(struct ck_sbuf *b, const char *s, size_t n)
{
  size_t run = 0;

  ck_sbuf_add(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    ck_sbuf_add(b, s + run, i - run);
    run = i + 1;
    switch (c) {
    case '"': ck_sbuf_add(b, "\\\"", 2); break;
    case '\\': ck_sbuf_add(b, "\\\\", 2); break;
    case '\n': ck_sbuf_add(b, "\\n", 2); break;
    case '\t': ck_sbuf_add(b, "\\t", 2); break;
    case '\r': ck_sbuf_add(b, "\\r", 2); break;
    default: ck_sbuf_addf(b, "\\u%04x", c); break;
    }
  }
  ck_sbuf_add(b, s + run, n - run);
  ck_sbuf_add(b, "\"", 1);
}

void ck_sbuf_json_double(struct ck_sbuf *b, double v)
{
  char tmp[40];

  if (isnan(v)) {
    ck_sbuf_add(b, "NaN", 3);
    return;
  }
  if (isinf(v)) {
    ck_sbuf_add(b, v > 0 ? "Infinity" : "-Infinity", v > 0 ? 8 : 9);
    return;
  }
  /* The shortest of %.15g..%.17g that reads back exactly, as Python's repr does. */
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
    if (strtod(tmp, NULL) == v)
      break;
  }
  if (strpbrk(tmp, ".eEn") == NULL)
    strcat(tmp, ".0"); /* stays a float when read back */
  ck_sbuf_add(b, tmp, strlen(tmp));
}
