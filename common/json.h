/* A small, bounded JSON tokenizer for untrusted headers (safetensors), Cerebras 0.5
 * metadata and torch pytree specs. One pass builds a flat token array (jsmn style);
 * the caller caps the token count (memory = 24 bytes per token) and the nesting depth
 * before anything is allocated beyond that. RFC 8259 strictly: no comments, no trailing
 * commas, UTF-8 checked, one top-level value. */
#ifndef CK_JSON_H
#define CK_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum { CK_J_OBJECT = 1, CK_J_ARRAY, CK_J_STRING, CK_J_NUMBER, CK_J_TRUE, CK_J_FALSE, CK_J_NULL };

struct ck_jtok {
  uint32_t start, end; /* bytes of the value (strings: inside the quotes, still escaped) */
  uint32_t size;       /* objects: members; arrays: elements */
  uint32_t next;       /* index of the token after this value (and its children) */
  uint8_t type;
  uint8_t escaped;     /* strings: contains a backslash escape */
};

struct ck_json {
  const char *s;       /* the text (not owned) */
  size_t len;
  struct ck_jtok *t;   /* t[0] is the top-level value; an object's members are key, value, ... */
  size_t n;
};

/* Parse len bytes. At most max_tokens tokens and max_depth nesting; CK_ELIMIT beyond,
 * CK_EFORMAT for bad syntax ("at byte N: ..."). Texts of 4 GiB and more are refused. */
int ck_json_parse(const char *s, size_t len, size_t max_tokens, unsigned max_depth, struct ck_json *out,
                  struct ck_err *err);
void ck_json_free(struct ck_json *j);

/* Index of the first child (an object's first key, an array's first element): tok + 1. */
static inline size_t ck_json_first(size_t tok) { return tok + 1; }
/* Index of the value after tok's subtree (siblings: keys and values alternate in objects). */
static inline size_t ck_json_next(const struct ck_json *j, size_t tok) { return j->t[tok].next; }

/* The value of member key of object obj, or 0 if absent (0 is never a member). */
size_t ck_json_get(const struct ck_json *j, size_t obj, const char *key);
/* 1 if string token tok equals s once unescaped. */
int ck_json_streq(const struct ck_json *j, size_t tok, const char *s);
/* Unescape string token tok into a new NUL-terminated buffer (len without the NUL). 0, -ENOMEM,
 * CK_EFORMAT (not a string, or \u0000 when nul_ok is 0). */
int ck_json_str(const struct ck_json *j, size_t tok, int nul_ok, char **out, size_t *len);
/* Numbers: an integer without fraction or exponent in range (CK_EFORMAT otherwise). */
int ck_json_i64(const struct ck_json *j, size_t tok, int64_t *v);
int ck_json_u64(const struct ck_json *j, size_t tok, uint64_t *v);
/* Any JSON number as a double. */
int ck_json_double(const struct ck_json *j, size_t tok, double *v);

/* Writing: append s to a growing buffer as a JSON string literal (quotes, escapes). */
struct ck_sbuf {
  char *p;
  size_t len, cap;
  int oom;
};
void ck_sbuf_add(struct ck_sbuf *b, const char *s, size_t n);
void ck_sbuf_addf(struct ck_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ck_sbuf_json_str(struct ck_sbuf *b, const char *s, size_t n);
/* A double as JSON (repr-like, round-trips: %.17g trimmed; NaN/Inf as Python's json writes them). */
void ck_sbuf_json_double(struct ck_sbuf *b, double v);

#endif
