/* The torch reader's parsers on hand-built inputs: the restricted unpickler opcode by
 * opcode (values checked), refused globals by name, limits (nesting, claimed lengths,
 * memo, objects, stack); zip archives written here and then corrupted (end record,
 * directory offsets, overlaps, compression, duplicates), ck_zip_probe's three answers;
 * and the source on small archives: names, spec, values, views streamed in row-major
 * order, out-of-range views, CRC-32 mismatches, legacy files, byteorder. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>

#include "dtype.h"
#include "fileio.h"
#include "pipeline.h"
#include "unpickle.h"
#include "zip.h"
#include "tap.h"
#include "testutil.h"

#define P(s) s, sizeof(s) - 1

/* ---- the unpickler, one case a row ---- */

struct pcase {
  const char *what;
  const char *p;
  size_t n;
  int want;            /* return code */
  const char *msg;     /* substring of the message (errors) */
  int kind;            /* root kind (successes) */
  int64_t i;           /* root int / n items */
};

static const struct pcase pcases[] = {
  { "EMPTY_DICT", P("\x80\x02}."), 0, NULL, CK_PK_DICT, 0 },
  { "MARK SETITEMS BINUNICODE BININT1", P("\x80\x02}(X\x01\x00\x00\x00" "aK\x05u."), 0, NULL, CK_PK_DICT, 2 },
  { "SHORT_BINUNICODE", P("\x80\x04\x8c\x02hi."), 0, NULL, CK_PK_STR, 2 },
  { "BINUNICODE8", P("\x80\x04\x8d\x03\x00\x00\x00\x00\x00\x00\x00" "abc."), 0, NULL, CK_PK_STR, 3 },
  { "BININT negative", P("\x80\x02J\xfe\xff\xff\xff."), 0, NULL, CK_PK_INT, -2 },
  { "BININT2", P("\x80\x02M\x34\x12."), 0, NULL, CK_PK_INT, 0x1234 },
  { "LONG1 negative", P("\x80\x02\x8a\x02\x00\x80."), 0, NULL, CK_PK_INT, -32768 },
  { "LONG1 8 bytes", P("\x80\x02\x8a\x08\x01\x00\x00\x00\x00\x00\x00\x40."), 0, NULL, CK_PK_INT, 0x4000000000000001 },
  { "LONG1 zero bytes", P("\x80\x02\x8a\x00."), 0, NULL, CK_PK_INT, 0 },
  { "LONG1 9 bytes", P("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."), CK_EUNSUP, "wider than 64", 0, 0 },
  { "BINFLOAT", P("\x80\x02G\x40\x04\x00\x00\x00\x00\x00\x00."), 0, NULL, CK_PK_FLOAT, 0 },
  { "NEWTRUE NEWFALSE NONE TUPLE", P("\x80\x02(\x88\x89Nt."), 0, NULL, CK_PK_TUPLE, 3 },
  { "TUPLE1 TUPLE2 TUPLE3", P("\x80\x02K\x01\x85K\x01K\x02\x86K\x01K\x02K\x03\x87\x87."), 0, NULL, CK_PK_TUPLE, 3 },
  { "EMPTY_TUPLE", P("\x80\x02)."), 0, NULL, CK_PK_TUPLE, 0 },
  { "LIST", P("\x80\x02(K\x01K\x02l."), 0, NULL, CK_PK_LIST, 2 },
  { "DICT", P("\x80\x02(X\x01\x00\x00\x00" "aK\x01" "d."), 0, NULL, CK_PK_DICT, 2 },
  { "DICT odd", P("\x80\x02(X\x01\x00\x00\x00" "ad."), CK_EFORMAT, "odd", 0, 0 },
  { "EMPTY_LIST APPEND", P("\x80\x02]K\x01" "a."), 0, NULL, CK_PK_LIST, 1 },
  { "APPENDS", P("\x80\x02](K\x01K\x02K\x03" "e."), 0, NULL, CK_PK_LIST, 3 },
  { "SETITEM", P("\x80\x02}X\x01\x00\x00\x00" "aK\x01s."), 0, NULL, CK_PK_DICT, 2 },
  { "APPEND on a dict", P("\x80\x02}K\x01" "a."), CK_EFORMAT, "not a list", 0, 0 },
  { "SETITEM on a list", P("\x80\x02]K\x01K\x01s."), CK_EFORMAT, "not a dict", 0, 0 },
  { "BINPUT BINGET (a list holding itself)", P("\x80\x02]q\x00h\x00" "a."), 0, NULL, CK_PK_LIST, 1 },
  { "LONG_BINPUT LONG_BINGET", P("\x80\x02K\x07r\x05\x00\x00\x00j\x05\x00\x00\x00\x86."), 0, NULL, CK_PK_TUPLE, 2 },
  { "MEMOIZE", P("\x80\x04K\x07\x94h\x00\x86."), 0, NULL, CK_PK_TUPLE, 2 },
  { "FRAME", P("\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00K\x01."), 0, NULL, CK_PK_INT, 1 },
  { "FRAME too long", P("\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00K\x01."), CK_EFORMAT, "FRAME", 0, 0 },
  { "POP", P("\x80\x02K\x01K\x02" "0."), 0, NULL, CK_PK_INT, 1 },
  { "STACK_GLOBAL OrderedDict REDUCE", P("\x80\x04\x8c\x0b" "collections\x8c\x0bOrderedDict\x93)R."), 0, NULL,
    CK_PK_ODICT, 0 },
  { "GLOBAL OrderedDict REDUCE", P("\x80\x02" "ccollections\nOrderedDict\n)R."), 0, NULL, CK_PK_ODICT, 0 },
  { "OrderedDict with arguments", P("\x80\x02" "ccollections\nOrderedDict\n]\x85R."), CK_EUNSUP, "arguments", 0, 0 },
  { "torch.Size", P("\x80\x02" "ctorch\nSize\nK\x02K\x03\x86\x85R."), 0, NULL, CK_PK_TUPLE, 2 },
  { "torch.device", P("\x80\x02" "ctorch\ndevice\nX\x03\x00\x00\x00" "cpu\x85R."), 0, NULL, CK_PK_OTHER, 0 },
  { "dtype global", P("\x80\x02" "ctorch\nbfloat16\n."), 0, NULL, CK_PK_GLOBAL, 0 },
  { "BUILD empty state", P("\x80\x02]}b."), 0, NULL, CK_PK_LIST, 0 },
  { "BUILD: OrderedDict attributes (state_dict()._metadata)",
    P("\x80\x02" "ccollections\nOrderedDict\n)R}X\t\x00\x00\x00_metadata}sb."), 0, NULL, CK_PK_ODICT, 0 },
  { "BUILD with state", P("\x80\x02]}X\x01\x00\x00\x00" "aK\x01sb."), CK_EUNSUP, "BUILD", 0, 0 },
  { "os.system", P("\x80\x02" "cos\nsystem\n."), CK_EFORMAT, "global 'os.system' is not allowed (weights_only)", 0, 0 },
  { "builtins.eval", P("\x80\x02" "cbuiltins\neval\n."), CK_EFORMAT, "global 'builtins.eval' is not allowed", 0, 0 },
  { "STACK_GLOBAL os.system", P("\x80\x04\x8c\x02os\x8c\x06system\x93."), CK_EFORMAT, "'os.system' is not allowed", 0, 0 },
  { "torch.load", P("\x80\x02" "ctorch\nload\n."), CK_EFORMAT, "'torch.load' is not allowed", 0, 0 },
  { "_rebuild_qtensor", P("\x80\x02" "ctorch._utils\n_rebuild_qtensor\n."), CK_EUNSUP, "_rebuild_qtensor", 0, 0 },
  { "calling a storage class", P("\x80\x02" "ctorch\nFloatStorage\n)R."), CK_EFORMAT, "cannot be called", 0, 0 },
  { "GLOBAL without lines", P("\x80\x02" "cos"), CK_EFORMAT, "GLOBAL", 0, 0 },
  { "BINUNICODE claims 4 GiB", P("\x80\x02X\xff\xff\xff\xff" "ab."), CK_EFORMAT, "past the end", 0, 0 },
  { "BINUNICODE8 claims 2^63", P("\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x80" "ab."), CK_EFORMAT, "past the end", 0, 0 },
  { "not UTF-8", P("\x80\x02X\x02\x00\x00\x00\xc3\x28."), CK_EFORMAT, "UTF-8", 0, 0 },
  { "memo index 2^31", P("\x80\x02K\x01r\xff\xff\xff\x7f."), CK_ELIMIT, "memo", 0, 0 },
  { "BINGET unset", P("\x80\x02h\x03."), CK_EFORMAT, "memo key", 0, 0 },
  { "APPEND on empty stack", P("\x80\x02" "a."), CK_EFORMAT, "underflow", 0, 0 },
  { "TUPLE without MARK", P("\x80\x02K\x01t."), CK_EFORMAT, "MARK", 0, 0 },
  { "pop through a MARK", P("\x80\x02K\x01(0."), CK_EFORMAT, "underflow", 0, 0 },
  { "no STOP", P("\x80\x02K\x01"), CK_EFORMAT, "no STOP", 0, 0 },
  { "empty", P(""), CK_EFORMAT, "no STOP", 0, 0 },
  { "STOP with two objects", P("\x80\x02K\x01K\x02."), CK_EFORMAT, "STOP", 0, 0 },
  { "INST (protocol 0 code path)", P("\x80\x02ios\nsystem\n."), CK_EUNSUP, "0x69", 0, 0 },
  { "protocol 1", P("\x80\x01}."), CK_EUNSUP, "protocol", 0, 0 },
  { "persistent id not a storage", P("\x80\x02X\x01\x00\x00\x00" "a\x85Q."), CK_EFORMAT, "persistent id", 0, 0 },
  { "storage key with a slash",
    P("\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x04\x00\x00\x00../aX\x03\x00\x00\x00" "cpuK\x01tQ."),
    CK_EFORMAT, "storage key", 0, 0 },
  { "_rebuild_tensor_v2",
    P("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nBFloat16Storage\nX\x01\x00\x00\x00" "0"
      "X\x03\x00\x00\x00" "cpuK\x06tQK\x01K\x02K\x02\x86K\x01K\x02\x86\x89" "ccollections\nOrderedDict\n)RtR."),
    0, NULL, CK_PK_TENSOR, 2 },
  { "_rebuild_parameter",
    P("\x80\x02" "ctorch._utils\n_rebuild_parameter\n" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
      "ctorch\nUntypedStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x06tQK\x00K\x06\x85K\x01\x85\x89}tR"
      "\x88}\x87R."),
    0, NULL, CK_PK_TENSOR, 1 },
  { "_rebuild_tensor_v2 with metadata",
    P("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0"
      "X\x03\x00\x00\x00" "cpuK\x06tQK\x00K\x06\x85K\x01\x85\x89}}X\x04\x00\x00\x00" "conj\x88stR."),
    CK_EUNSUP, "metadata", 0, 0 },
  { "_rebuild_tensor_v2 with hooks",
    P("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0"
      "X\x03\x00\x00\x00" "cpuK\x06tQK\x00K\x06\x85K\x01\x85\x89}X\x01\x00\x00\x00" "aK\x01stR."),
    CK_EUNSUP, "backward hooks", 0, 0 },
  { "_rebuild_tensor_v2 size and stride of different ranks",
    P("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0"
      "X\x03\x00\x00\x00" "cpuK\x06tQK\x00)K\x01\x85\x89}tR."),
    CK_EFORMAT, "bad arguments", 0, 0 },
};

static void check_pcase(const struct pcase *c)
{
  struct ck_unpickle *u = NULL;
  struct ck_err err = { 0 };
  int rc = ck_unpickle((const uint8_t *)c->p, c->n, NULL, &u, &err);

  if (c->want != 0) {
    ok(rc == c->want && strstr(err.msg, c->msg) != NULL, "unpickle %s: %s (%s)", c->what, ck_strerror(c->want), err.msg);
    ck_unpickle_free(u);
    return;
  }
  if (!ok(rc == 0 && u && u->root->kind == c->kind, "unpickle %s: kind %d (%s)", c->what, c->kind, err.msg)) {
    ck_unpickle_free(u);
    return;
  }
  switch (c->kind) {
  case CK_PK_INT: ok(u->root->i == c->i, "  value %lld", (long long)u->root->i); break;
  case CK_PK_STR: ok(u->root->slen == (size_t)c->i, "  length %zu", u->root->slen); break;
  case CK_PK_FLOAT: ok(u->root->f == 2.5, "  value %g", u->root->f); break;
  case CK_PK_TENSOR:
    ok(u->root->rank == c->i && u->root->storage && u->root->dt && u->root->storage->numel == 6,
       "  rank %d, storage numel %lld, dtype %s", u->root->rank, (long long)u->root->storage->numel, u->root->dt->dtype);
    break;
  case CK_PK_LIST: case CK_PK_TUPLE: case CK_PK_DICT: ok(u->root->n == (size_t)c->i, "  %zu items", u->root->n); break;
  default: break;
  }
  ck_unpickle_free(u);
}

/* Many MARKs, many objects, a deep stack: each limit says so. */
static void test_limits(void)
{
  struct ck_unpickle_limits lim = ck_unpickle_default_limits;
  uint8_t *p = malloc(200000);
  struct ck_unpickle *u = NULL;
  struct ck_err err = { 0 };
  size_t n = 0;
  int rc;

  p[n++] = 0x80, p[n++] = 2;
  for (int i = 0; i < 1000; i++)
    p[n++] = '(';
  p[n++] = '.';
  rc = ck_unpickle(p, n, NULL, &u, &err);
  ok(rc == CK_ELIMIT && strstr(err.msg, "MARK"), "1000 nested MARKs: limit (%s)", err.msg);
  n = 2;
  for (int i = 0; i < 5000; i++)
    p[n++] = 'N';
  p[n++] = '.';
  lim.max_objects = 1000;
  rc = ck_unpickle(p, n, &lim, &u, &err);
  ok(rc == CK_ELIMIT && strstr(err.msg, "objects"), "5000 objects over a limit of 1000 (%s)", err.msg);
  lim = ck_unpickle_default_limits;
  lim.max_stack = 100;
  rc = ck_unpickle(p, n, &lim, &u, &err);
  ok(rc == CK_ELIMIT && strstr(err.msg, "stack"), "a stack of 5000 over a limit of 100 (%s)", err.msg);
  /* memo abuse: 100000 BINGETs of one object in a list: shared, not copied */
  n = 0;
  p[n++] = 0x80, p[n++] = 2, p[n++] = ']', p[n++] = 'q', p[n++] = 1, p[n++] = '(';
  for (int i = 0; i < 60000; i++)
    p[n++] = 'h', p[n++] = 1;
  p[n++] = 'e', p[n++] = '.';
  rc = ck_unpickle(p, n, NULL, &u, &err);
  ok(rc == 0 && u->root->n == 60000 && u->nobjs == 1, "60000 BINGETs of a list into itself: one object (%s)", err.msg);
  ck_unpickle_free(u);
  free(p);
}

/* ---- zip archives written here ---- */

struct zent {
  const char *name;
  const void *data;
  size_t n;
};

struct zbuf {
  uint8_t *p;
  size_t n;
};

static void put(struct zbuf *b, const void *d, size_t n)
{
  memcpy(b->p + b->n, d, n);
  b->n += n;
}

static void put16(struct zbuf *b, unsigned v)
{
  uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
  put(b, x, 2);
}

static void put32(struct zbuf *b, uint32_t v)
{
  put16(b, v & 0xffff);
  put16(b, v >> 16);
}

/* A stored zip of the entries (local headers with the CRC, no data descriptors). */
static struct zbuf make_zip(const struct zent *e, int n)
{
  struct zbuf b = { calloc(1, 1 << 20), 0 };
  uint32_t off[16];
  size_t cd, cdsize;

  for (int i = 0; i < n; i++) {
    off[i] = (uint32_t)b.n;
    put32(&b, CK_ZIP_LOCAL_SIG), put16(&b, 20), put16(&b, 0), put16(&b, 0), put32(&b, 0);
    put32(&b, libdeflate_crc32(0, e[i].data, e[i].n)), put32(&b, (uint32_t)e[i].n), put32(&b, (uint32_t)e[i].n);
    put16(&b, (unsigned)strlen(e[i].name)), put16(&b, 0), put(&b, e[i].name, strlen(e[i].name));
    put(&b, e[i].data, e[i].n);
  }
  cd = b.n;
  for (int i = 0; i < n; i++) {
    put32(&b, CK_ZIP_CENTRAL_SIG), put16(&b, 20), put16(&b, 20), put16(&b, 0), put16(&b, 0), put32(&b, 0);
    put32(&b, libdeflate_crc32(0, e[i].data, e[i].n)), put32(&b, (uint32_t)e[i].n), put32(&b, (uint32_t)e[i].n);
    put16(&b, (unsigned)strlen(e[i].name)), put16(&b, 0), put16(&b, 0), put16(&b, 0), put16(&b, 0), put32(&b, 0);
    put32(&b, off[i]), put(&b, e[i].name, strlen(e[i].name));
  }
  cdsize = b.n - cd;
  put32(&b, CK_ZIP_EOCD_SIG), put16(&b, 0), put16(&b, 0), put16(&b, (unsigned)n), put16(&b, (unsigned)n);
  put32(&b, (uint32_t)cdsize), put32(&b, (uint32_t)cd), put16(&b, 0);
  return b;
}

static uint8_t *cd_at(struct zbuf *b, int i)
{
  uint8_t *p = b->p + b->n - CK_ZIP_EOCD_SIZE;
  uint32_t cd = (uint32_t)p[16] | (uint32_t)p[17] << 8 | (uint32_t)p[18] << 16 | (uint32_t)p[19] << 24;

  p = b->p + cd;
  while (i-- > 0)
    p += CK_ZIP_CENTRAL_SIZE + (p[28] | p[29] << 8);
  return p;
}

static const uint8_t f32[6 * 4] = { 0 };

static struct zbuf three(void)
{
  const struct zent e[3] = { { "a/data.pkl", "\x80\x02}.", 4 }, { "a/data/0", f32, sizeof(f32) }, { "a/version", "3\n", 2 } };
  return make_zip(e, 3);
}

static void zip_case(const char *what, struct zbuf b, int want, const char *msg)
{
  struct ck_zip *z = NULL;
  struct ck_err err = { 0 };
  int rc = ck_zip_open_mem(b.p, b.n, "t.pt", 1 << 20, &z, &err);
  uint64_t off;

  for (size_t i = 0; rc == 0 && i < z->n; i++)
    rc = ck_zip_data_offset(z, &z->e[i], &off, &err);
  ok(rc == want && (msg == NULL || strstr(err.msg, msg)), "zip %s: %s (%s)", what, want ? ck_strerror(want) : "ok", err.msg);
  ck_zip_close(z);
  free(b.p);
}

static void test_zip(void)
{
  struct zbuf b;
  uint8_t *p;

  zip_case("three stored entries", three(), 0, NULL);
  b = three(), b.n -= 10;
  zip_case("truncated end record", b, CK_EFORMAT, "no zip end");
  b = three(), p = b.p + b.n - CK_ZIP_EOCD_SIZE, p[16] = 0xff, p[17] = 0xff;
  zip_case("directory offset beyond the file", b, CK_EFORMAT, "central directory");
  b = three(), p = b.p + b.n - CK_ZIP_EOCD_SIZE, p[10] = 40, p[8] = 40;
  zip_case("more entries than the directory holds", b, CK_EFORMAT, "cannot fit");
  b = three(), p = cd_at(&b, 1), p[42] = 4;
  zip_case("entries overlapping", b, CK_EFORMAT, "overlaps");
  b = three(), p = cd_at(&b, 1), p[20] = 200, p[24] = 200;
  zip_case("entry size past the next entry", b, CK_EFORMAT, "overlaps");
  b = three(), p = cd_at(&b, 1), p[10] = 8;
  zip_case("a compressed entry", b, CK_EUNSUP, "compressed (method 8)");
  b = three(), p = cd_at(&b, 1), p[8] = 1;
  zip_case("an encrypted entry", b, CK_EUNSUP, "encrypted");
  b = three(), p = cd_at(&b, 2), memcpy(p + CK_ZIP_CENTRAL_SIZE, "a/data/0", 8), p[28] = 8;
  b.p[b.n - CK_ZIP_EOCD_SIZE + 12] -= 1; /* the name is one byte shorter: so is the directory */
  memmove(p + CK_ZIP_CENTRAL_SIZE + 8, p + CK_ZIP_CENTRAL_SIZE + 9, (size_t)(b.p + b.n - (p + CK_ZIP_CENTRAL_SIZE + 9)));
  b.n -= 1;
  zip_case("duplicate names", b, CK_EFORMAT, "duplicate");
  b = three(), p = cd_at(&b, 1), p[42] = 0, p[43] = 0, p[44] = 0, p[45] = 0;
  zip_case("two entries at one offset", b, CK_EFORMAT, "overlaps");
  b = three(), memset(b.p + 40, 0, 4);
  b.p[cd_at(&b, 1) - b.p + 42] += 0; /* local header of entry 1 intact; entry 0's data zeroed: fine */
  zip_case("data bytes do not matter to the directory", b, 0, NULL);
  b = three(), p = cd_at(&b, 2), p[30] = 0xff, p[31] = 0xff; /* extra field runs past the directory */
  zip_case("a record running past the directory", b, CK_EFORMAT, "past the directory");
}

/* ---- the source on archives written to files ---- */

static char *tmp;

static char *write_zip(const char *name, struct zbuf b)
{
  char *path = ck_path_join(tmp, name);

  tu_write_file(path, b.p, b.n);
  free(b.p);
  return path;
}

static void test_probe(void)
{
  struct zbuf b = three();
  struct ck_err err = { 0 };
  char *full, *part, *none, *empty;

  part = ck_path_join(tmp, "part.pt");
  tu_write_file(part, b.p, b.n / 2);
  full = write_zip("full.pt", b);
  none = ck_path_join(tmp, "none.pt");
  tu_write_file(none, "\x80\x02\x8a\x0a", 4);
  empty = ck_path_join(tmp, "empty.pt");
  tu_write_file(empty, "", 0);
  ok(ck_zip_probe(full, &err) == 0, "probe: a complete zip (%s)", err.msg);
  ok(ck_zip_probe(part, &err) == CK_EINCOMPLETE, "probe: half a zip is incomplete (%s)", err.msg);
  ok(ck_zip_probe(none, &err) == CK_EFORMAT, "probe: a legacy pickle is not a zip (%s)", err.msg);
  ok(ck_zip_probe(empty, &err) == CK_EINCOMPLETE, "probe: an empty file may become a zip (%s)", err.msg);
  free(full), free(part), free(none), free(empty);
}

/* A 2x3 float storage 0..5 viewed as x (2x3), its transpose xt (3x2), a row slice s;
 * an int key, a value of each kind, a device (skipped). */
#define TV2(name, off, s0, s1, st0, st1)                                                          \
  "X\x01\x00\x00\x00" name "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"         \
  "ctorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x06tQK" off "K" s0 "K" s1 "\x86K" st0 "K" st1 \
  "\x86\x89}tR"

static const char tree_pkl[] = "\x80\x02}(" TV2("x", "\x00", "\x02", "\x03", "\x03", "\x01")
  TV2("t", "\x00", "\x03", "\x02", "\x01", "\x03") TV2("s", "\x03", "\x01", "\x02", "\x03", "\x02")
  "X\x01\x00\x00\x00o](K\x07X\x02\x00\x00\x00hiNG\x40\x04\x00\x00\x00\x00\x00\x00\x88" "e"
  "K\x05}X\x01\x00\x00\x00" "d" "ctorch\ndevice\nX\x03\x00\x00\x00" "cpu\x85Rsu.";

static const float f06[6] = { 0, 1, 2, 3, 4, 5 };

static char *tree_file(const char *name, const char *pkl, size_t n, const void *data, size_t dn, const char *order)
{
  struct zent e[4] = { { "tr/data.pkl", pkl, n }, { "tr/data/0", data, dn }, { "tr/byteorder", order, order ? strlen(order) : 0 } };
  return write_zip(name, make_zip(e, order ? 3 : 2));
}

static int collect(void *ctx, const void *d, size_t n)
{
  return tu_collect_chunk(ctx, d, n);
}

static void test_source_tree(void)
{
  char *path = tree_file("tree.pt", tree_pkl, sizeof(tree_pkl) - 1, f06, sizeof(f06), "little");
  struct ck_source *s = NULL;
  struct ck_err err = { 0 };
  int rc = ck_torch_source_open(path, 1 << 20, &s, &err);
  static const float want_t[6] = { 0, 3, 1, 4, 2, 5 }, want_s[2] = { 3, 5 };
  const char *names = "";

  if (!ok(rc == 0 && s->count == 3, "source: a dict of 3 views, values, a device (%s)", err.msg))
    goto out;
  for (size_t i = 0; i < s->count; i++) {
    struct ck_tinfo t;
    uint8_t out[64];
    struct tu_collect c = { out, 0 };
    s->ops->info(s, i, &t);
    for (size_t bs = 4; bs <= 64; bs *= 4) {
      c.len = 0;
      rc = s->ops->stream(s, i, (uint8_t[64]){ 0 }, bs, collect, &c, &err);
      if (strcmp(t.name, "t") == 0)
        ok(rc == 0 && c.len == 24 && memcmp(out, want_t, 24) == 0, "transposed view in row-major order, buffer %zu", bs);
      else if (strcmp(t.name, "s") == 0)
        ok(rc == 0 && c.len == 8 && memcmp(out, want_s, 8) == 0, "strided slice at offset 3, buffer %zu", bs);
      else
        ok(rc == 0 && c.len == 24 && memcmp(out, f06, 24) == 0 && t.dtype == CK_DT_FLOAT && t.rank == 2 &&
           t.dims[0] == 2 && t.dims[1] == 3 && !t.has_crc, "contiguous 2x3 float, buffer %zu", bs);
    }
  }
  names = s->nvalues == 5 ? s->values[0].name : "";
  ok(s->nvalues == 5 && strcmp(names, "o.0") == 0 && s->values[0].kind == CK_VAL_INT && s->values[0].i == 7 &&
     s->values[1].kind == CK_VAL_STR && strcmp(s->values[1].s, "hi") == 0 && s->values[2].kind == CK_VAL_NONE &&
     s->values[3].kind == CK_VAL_FLOAT && s->values[3].f == 2.5 && s->values[4].kind == CK_VAL_BOOL,
     "values o.0 .. o.4: int, str, None, float, bool");
  ok(s->nskipped == 1 && strcmp(s->skipped[0], "5.d: torch.device") == 0, "the device is skipped as 5.d (%s)",
     s->nskipped ? s->skipped[0] : "");
  ok(s->spec && strstr(s->spec, "[1, {\"type\": \"builtins.dict\", \"context\": \"[\\\"x\\\", \\\"t\\\", \\\"s\\\", \\\"o\\\", 5]\"") &&
     strstr(s->spec, "\"builtins.list\""), "spec: a dict of x, t, s, o, 5 (%s)", s->spec);
  ok(strlen(s->source_id) > 2 && strchr(s->source_id, ':'), "source id %s", s->source_id);
out:
  if (s)
    s->ops->close(s);
  free(path);
}

/* Values only, no tensor: a source of 0 tensors with its values and spec. */
static void test_source_no_tensors(void)
{
  static const char pkl[] = "\x80\x02}(X\x04\x00\x00\x00stepK\x03u.";
  char *path = tree_file("n.pt", pkl, sizeof(pkl) - 1, f06, sizeof(f06), NULL);
  struct ck_source *s = NULL;
  struct ck_err err = { 0 };
  int rc = ck_torch_source_open(path, 1 << 20, &s, &err);

  ok(rc == 0 && s->count == 0 && s->nvalues == 1 && s->values[0].i == 3 && s->spec,
     "source: values only, no tensors (%s)", err.msg);
  if (s)
    s->ops->close(s);
  free(path);
}

static void open_fails(const char *what, char *path, int want, const char *msg)
{
  struct ck_source *s = NULL;
  struct ck_err err = { 0 };
  int rc = ck_torch_source_open(path, 1 << 20, &s, &err);

  ok(rc == want && s == NULL && strstr(err.msg, msg), "source: %s: %s (%s)", what, ck_strerror(want), err.msg);
  if (s)
    s->ops->close(s);
  free(path);
}

static void test_source_errors(void)
{
  static const char bad_view[] = "\x80\x02}(" TV2("v", "\x01", "\x02", "\x03", "\x03", "\x01") "u.";
  static const char cyc[] = "\x80\x02}(X\x01\x00\x00\x00" "a]q\x00h\x00" "au.";
  static const char evil[] = "\x80\x02}(X\x01\x00\x00\x00" "acos\nsystem\nu.";
  static const char dup[] = "\x80\x02}(X\x03\x00\x00\x00" "a.b" "K\x01X\x01\x00\x00\x00" "a}X\x01\x00\x00\x00" "bK\x02su.";
  float flipped[6] = { 0, 1, 2, 3, 4, 6 };
  struct ck_source *s = NULL;
  struct ck_err err = { 0 };
  char *path, *p;
  int rc;

  open_fails("view beyond its storage", tree_file("v.pt", bad_view, sizeof(bad_view) - 1, f06, sizeof(f06), NULL),
             CK_EFORMAT, "tensor 'v': view (offset 1) lies outside its storage");
  open_fails("storage entry of the wrong size", tree_file("w.pt", tree_pkl, sizeof(tree_pkl) - 1, f06, 20, NULL),
             CK_EFORMAT, "holds 20 bytes, not 6 elements");
  {
    /* (t, t) of (u, u) of ... 40 levels through the memo: 2^40 tensor leaves from 300 bytes */
    static const char t6[] = "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
                             "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x06tQK\x00K\x06\x85K\x01\x85\x89}tR";
    char bomb[400];
    size_t n = sizeof(t6) - 1;
    memcpy(bomb, t6, n);
    for (int i = 0; i < 40; i++)
      bomb[n++] = 'q', bomb[n++] = 0, bomb[n++] = 'h', bomb[n++] = 0, bomb[n++] = '\x86';
    bomb[n++] = '.';
    open_fails("2^40 leaves through shared tuples", tree_file("bomb.pt", bomb, n, f06, sizeof(f06), NULL), CK_ELIMIT,
               "more than 1048576 nodes");
  }
  open_fails("a list holding itself", tree_file("c.pt", cyc, sizeof(cyc) - 1, f06, sizeof(f06), NULL), CK_ELIMIT,
             "nested deeper");
  p = tree_file("x.pt", evil, sizeof(evil) - 1, f06, sizeof(f06), NULL);
  {
    char want[4300];
    snprintf(want, sizeof(want), "%s: data.pkl: global 'os.system' is not allowed (weights_only)", p);
    open_fails("os.system", p, CK_EFORMAT, want);
  }
  open_fails("big-endian", tree_file("b.pt", tree_pkl, sizeof(tree_pkl) - 1, f06, sizeof(f06), "big"), CK_EUNSUP,
             "big-endian");
  open_fails("two leaves named a.b", tree_file("d.pt", dup, sizeof(dup) - 1, f06, sizeof(f06), NULL), CK_EFORMAT,
             "two leaves are named 'a.b'");
  path = ck_path_join(tmp, "legacy.pt");
  tu_write_file(path, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  open_fails("legacy", path, CK_EUNSUP, "legacy torch.save format (before PyTorch 1.6) is not supported; re-save");
  /* a storage whose bytes do not match the directory's CRC-32: found when streamed */
  {
    struct zbuf b = make_zip((struct zent[]){ { "tr/data.pkl", tree_pkl, sizeof(tree_pkl) - 1 }, { "tr/data/0", f06, 24 } }, 2);
    memcpy(b.p + CK_ZIP_LOCAL_SIZE * 2 + 11 + (sizeof(tree_pkl) - 1) + 9, flipped, 24);
    path = write_zip("crc.pt", b);
  }
  rc = ck_torch_source_open(path, 1 << 20, &s, &err);
  if (ok(rc == 0, "source with a corrupt storage opens (%s)", err.msg)) {
    uint8_t out[64], buf[16];
    for (size_t i = 0; i < s->count; i++) {
      struct tu_collect c = { out, 0 };
      rc = s->ops->stream(s, i, buf, sizeof(buf), collect, &c, &err);
      ok(rc == CK_ECHECKSUM && strstr(err.msg, "tr/data/0: CRC-32"), "tensor %zu: CK_ECHECKSUM (%s)", i, err.msg);
    }
    s->ops->close(s);
  }
  free(path);
}

int main(void)
{
  tmp = tu_tmpdir();
  for (size_t i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++)
    check_pcase(&pcases[i]);
  test_limits();
  test_zip();
  test_probe();
  test_source_tree();
  test_source_no_tensors();
  test_source_errors();
  tu_rmtree(tmp);
  free(tmp);
  return tap_done();
}
