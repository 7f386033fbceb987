/* The bounded JSON tokenizer and the torch tree-spec codec, table by table. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "spec.h"
#include "tap.h"

static void test_parse_table(void)
{
  static const struct {
    const char *text;
    int rc;
    size_t ntok;
  } t[] = {
    { "{}", 0, 1 },
    { "[1, 2.5, -3e2, true, false, null, \"x\"]", 0, 8 },
    { "{\"a\": {\"b\": [1, {\"c\": 2}]}}", 0, 9 },
    { " \"\\u00e9\\n\" ", 0, 1 },
    { "\"\xc3\xa9\"", 0, 1 },
    { "", CK_EFORMAT, 0 },
    { "{", CK_EFORMAT, 0 },
    { "{\"a\" 1}", CK_EFORMAT, 0 },
    { "{\"a\": 1,}", CK_EFORMAT, 0 },        /* trailing comma */
    { "[1 2]", CK_EFORMAT, 0 },
    { "{} {}", CK_EFORMAT, 0 },              /* two values */
    { "01", CK_EFORMAT, 0 },
    { "1.", CK_EFORMAT, 0 },
    { "-", CK_EFORMAT, 0 },
    { "tru", CK_EFORMAT, 0 },
    { "\"\x01\"", CK_EFORMAT, 0 },           /* control character */
    { "\"\\x\"", CK_EFORMAT, 0 },            /* bad escape */
    { "\"\\u12\"", CK_EFORMAT, 0 },
    { "\"\xff\"", CK_EFORMAT, 0 },           /* invalid UTF-8 */
    { "\"\xc0\xaf\"", CK_EFORMAT, 0 },       /* overlong */
    { "\"\xed\xa0\x80\"", CK_EFORMAT, 0 },   /* encoded surrogate */
    { "{1: 2}", CK_EFORMAT, 0 },
    { "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
      CK_ELIMIT, 0 },
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    struct ck_json j;
    struct ck_err err = { 0 };
    int rc = ck_json_parse(t[i].text, strlen(t[i].text), 1000, 32, &j, &err);
    ok(rc == t[i].rc && (rc != 0 || j.n == t[i].ntok), "json row %zu: rc %d (%s) tokens %zu", i, rc, err.msg,
       rc == 0 ? j.n : 0);
    if (rc == 0)
      ck_json_free(&j);
  }
}

static void test_access(void)
{
  const char *text = "{\"name\": \"a\\\"b\\u0000c\", \"n\": 18446744073709551615, \"i\": -5, \"f\": 0.25, "
                     "\"big\": 1e400, \"arr\": [{\"x\": 1}, 2]}";
  struct ck_json j;
  struct ck_err err;
  uint64_t u;
  int64_t i;
  double d;
  char *s;
  size_t len, k;

  ok(ck_json_parse(text, strlen(text), 100, 8, &j, &err) == 0, "access: parses");
  k = ck_json_get(&j, 0, "name");
  ok(k && ck_json_str(&j, k, 0, &s, &len) == CK_EFORMAT, "\\u0000 refused where NUL is not allowed");
  ok(ck_json_str(&j, k, 1, &s, &len) == 0 && len == 5 && memcmp(s, "a\"b\0c", 5) == 0, "unescaped with NUL allowed");
  free(s);
  ok(ck_json_u64(&j, ck_json_get(&j, 0, "n"), &u) == 0 && u == UINT64_MAX, "u64 max");
  ok(ck_json_i64(&j, ck_json_get(&j, 0, "n"), &i) == CK_EFORMAT, "u64 max is out of i64 range");
  ok(ck_json_i64(&j, ck_json_get(&j, 0, "i"), &i) == 0 && i == -5, "i64 negative");
  ok(ck_json_u64(&j, ck_json_get(&j, 0, "i"), &u) == CK_EFORMAT, "negative is no u64");
  ok(ck_json_double(&j, ck_json_get(&j, 0, "f"), &d) == 0 && d == 0.25, "double");
  ok(ck_json_i64(&j, ck_json_get(&j, 0, "f"), &i) == CK_EFORMAT, "fraction is no integer");
  ok(ck_json_get(&j, 0, "missing") == 0, "absent key gives 0");
  k = ck_json_get(&j, 0, "arr");
  ok(k && j.t[k].size == 2 && ck_json_next(&j, ck_json_first(k)) == k + 4, "array children and next");
  ok(ck_json_get(&j, ck_json_first(k), "x") != 0, "nested object lookup");
  ck_json_free(&j);
  ok(ck_json_parse("[1,2,3,4]", 9, 3, 8, &j, &err) == CK_ELIMIT, "token cap: %s", err.msg);
}

static void test_writer(void)
{
  struct ck_sbuf b = { 0 };
  double vals[] = { 0.1, 1e-3, 3.0, -2.5e300, 1.0 / 3.0 };

  ck_sbuf_json_str(&b, "a\"\\\n\x01z", 6);
  ok(b.p && strcmp(b.p, "\"a\\\"\\\\\\n\\u0001z\"") == 0, "string escapes: %s", b.p);
  for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
    b.len = 0;
    ck_sbuf_json_double(&b, vals[i]);
    ok(strtod(b.p, NULL) == vals[i] && strpbrk(b.p, ".e") != NULL, "double %.17g round trips as %s", vals[i], b.p);
  }
  free(b.p);
}

static int collect(void *ctx, const char *name, size_t len)
{
  struct ck_sbuf *b = ctx;

  ck_sbuf_add(b, name, len);
  ck_sbuf_add(b, "|", 1);
  return 0;
}

static void test_spec(void)
{
  /* What torch.utils._pytree.treespec_dumps writes for
   * {"model": {"0.weight": t, "0.bias": t}, "opt": {"state": {0: {"step": t}}, "groups": [(1, 2)]}} */
  const char *spec =
    "[1, {\"type\": \"builtins.dict\", \"context\": \"[\\\"model\\\", \\\"opt\\\"]\", \"children_spec\": ["
    "{\"type\": \"collections.OrderedDict\", \"context\": \"[\\\"0.weight\\\", \\\"0.bias\\\"]\", \"children_spec\": ["
    "{\"type\": null, \"context\": null, \"children_spec\": []}, {\"type\": null, \"context\": null, \"children_spec\": []}]}, "
    "{\"type\": \"builtins.dict\", \"context\": \"[\\\"state\\\", \\\"groups\\\"]\", \"children_spec\": ["
    "{\"type\": \"builtins.dict\", \"context\": \"[0]\", \"children_spec\": [{\"type\": \"builtins.dict\", \"context\": "
    "\"[\\\"step\\\"]\", \"children_spec\": [{\"type\": null, \"context\": null, \"children_spec\": []}]}]}, "
    "{\"type\": \"builtins.list\", \"context\": \"null\", \"children_spec\": [{\"type\": \"builtins.tuple\", \"context\": "
    "\"null\", \"children_spec\": [{\"type\": null, \"context\": null, \"children_spec\": []}, {\"type\": null, "
    "\"context\": null, \"children_spec\": []}]}]}]}]}]";
  struct ck_spec *s = NULL, *s2 = NULL;
  struct ck_sbuf names = { 0 };
  struct ck_err err = { 0 };
  const char *bad;
  char *out, *out2;

  ok(ck_spec_parse(spec, strlen(spec), 1000, &s, &err) == 0, "spec parses: %s", err.msg);
  if (s == NULL)
    return;
  ok(ck_spec_count_leaves(s) == 5, "5 leaves");
  ck_spec_leaves(s, collect, &names);
  ok(names.p && strcmp(names.p, "model.0.weight|model.0.bias|opt.state.0.step|opt.groups.0.0|opt.groups.0.1|") == 0,
     "dotted leaf names: %s", names.p);
  out = ck_spec_dumps(s);
  ok(out && strcmp(out, spec) == 0, "dumps reproduces treespec_dumps byte for byte");
  ok(out && ck_spec_parse(out, strlen(out), 1000, &s2, &err) == 0, "dumps output parses again");
  out2 = s2 ? ck_spec_dumps(s2) : NULL;
  ok(out2 && strcmp(out, out2) == 0, "stable round trip");
  ok(ck_spec_parse(spec, strlen(spec), 5, &(struct ck_spec *){ NULL }, &err) == CK_ELIMIT,
     "node cap: %s", err.msg);
  ok(ck_spec_parse("[2, {}]", 7, 10, &(struct ck_spec *){ NULL }, &err) == CK_EUNSUP, "protocol 2: %s", err.msg);
  bad = "[1, {\"type\": \"builtins.set\", \"context\": null, \"children_spec\": []}]";
  ok(ck_spec_parse(bad, strlen(bad), 10,
                   &(struct ck_spec *){ NULL }, &err) == CK_EUNSUP,
     "unknown node type: %s", err.msg);
  bad = "[1, {\"type\": \"builtins.dict\", \"context\": \"[\\\"a\\\"]\", \"children_spec\": []}]";
  ok(ck_spec_parse(bad, strlen(bad), 10,
                   &(struct ck_spec *){ NULL }, &err) == CK_EFORMAT,
     "keys and children disagree: %s", err.msg);
  free(out);
  free(out2);
  free(names.p);
  ck_spec_free(s);
  ck_spec_free(s2);
}

int main(void)
{
  test_parse_table();
  test_access();
  test_writer();
  test_spec();
  return tap_done();
}
