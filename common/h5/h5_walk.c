/* The walk of an HDF5 file's groups: iterative, depth-first in link order, at most
 * CK_H5_MAX_DEPTH levels, each group once (links may form cycles). Each dataset
 * is classified by h5_read.c; a big group's datasets by helper processes too. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "h5_internal.h"
#include "h5_reader.h"
#include "util.h"

/* Deeper nesting is refused (no checkpoint layout nests names this deep). */
#define CK_H5_MAX_DEPTH 1024

struct child {
  size_t off;        /* its name in the frame's name buffer: 200,000 links, no 200,000 mallocs */
  int hard;
  haddr_t addr;      /* a hard link's object */
};

struct helper;

struct frame {
  hid_t g;
  size_t plen;       /* length of the group's key (its path without the leading '/') */
  struct child *c;
  size_t n, cap, next;
  char *names;       /* the links' names, NUL-separated */
  size_t nused, ncap;
  struct helper *h;  /* a big group: the processes classifying its slices */
  int nh;
  int by_addr;       /* its links are opened by address, not looked up by name */
};

static void helpers_free(struct frame *f);

static herr_t list_child(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
  struct frame *f = data;

  (void)g;
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 16;
    struct child *c = realloc(f->c, cap * sizeof(*c));
    if (c == NULL)
      return -1;
    f->c = c;
    f->cap = cap;
  }
  {
    size_t len = strlen(name) + 1;
    if (f->nused + len > f->ncap) {
      size_t ncap = (f->ncap ? f->ncap * 2 : 4096) + len;
      char *nn = realloc(f->names, ncap);
      if (nn == NULL)
        return -1;
      f->names = nn;
      f->ncap = ncap;
    }
    memcpy(f->names + f->nused, name, len);
    f->c[f->n].off = f->nused;
    f->nused += len;
  }
  f->c[f->n].addr = info->type == H5L_TYPE_HARD ? info->u.address : HADDR_UNDEF;
  f->c[f->n++].hard = info->type == H5L_TYPE_HARD;
  return 0;
}

/* Whether g's links are opened by address. A group in the old format (a symbol
 * table: what h5py writes by default, and ckptd's direct writer) looks each name up
 * through its local heap of names, which libhdf5 loads whole: with a 1 MiB cache, a
 * flat group of 200,000 names (a 6 MB heap) was re-read for every link, and `ckpt
 * ls` took 70 s instead of 6. Opening newer groups' links by name keeps 6 MB less
 * alive over 200,000 datasets. */
static int by_addr(hid_t g)
{
  H5O_info_t oi;

  if (H5Oget_info2(g, &oi, H5O_INFO_HDR) < 0) { /* (the header only: counting the links walks them) */
    H5Eclear2(H5E_DEFAULT);
    return 0;
  }
  return (int)((oi.hdr.mesg.present >> 0x11) & 1); /* a symbol table message (type 0x0011) */
}

/* libhdf5's metadata cache while f's links are visited. */
static size_t visit_cache(const struct frame *f)
{
  return f->by_addr ? CK_H5_ADDR_CACHE : CK_H5_CACHE;
}

/* Open link c of frame f: one open, its kind comes with it. */
static hid_t open_child(const struct frame *f, const struct child *c)
{
  return f->by_addr ? H5Oopen_by_addr(f->g, c->addr) : H5Oopen(f->g, f->names + c->off, H5P_DEFAULT);
}

/* A group's links in creation order where tracked, else name order (as h5py lists them). */
static int list_group(struct ck_h5r *r, struct frame *f, const char *key)
{
  hid_t gcpl = H5Gget_create_plist(f->g);
  unsigned flags = 0;
  hsize_t idx = 0;
  herr_t st;

  if (gcpl >= 0) {
    H5Pget_link_creation_order(gcpl, &flags);
    H5Pclose(gcpl);
  }
  ck_h5_set_cache(r->file, CK_H5_LIST_CACHE); /* (a hint: listing works at any size) */
  st = H5Literate(f->g, flags & H5P_CRT_ORDER_INDEXED ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME, H5_ITER_INC, &idx,
                  list_child, f);
  f->by_addr = by_addr(f->g);
  ck_h5_set_cache(r->file, visit_cache(f)); /* (helpers forked next inherit it) */
  if (st < 0)
    return ck_h5_err(r->err, CK_EFORMAT, "%s: cannot list group /%s", r->path, key);
  if (r->n + f->n > r->cap && f->n > 64) { /* a big group: room for all its tensors at once, no slack */
    struct ck_h5_tensor *nt = realloc(r->t, (r->n + f->n) * sizeof(*nt));
    if (nt != NULL) {
      r->t = nt;
      r->cap = r->n + f->n;
    }
  }
  return 0;
}

static void frame_free(struct frame *f)
{
  helpers_free(f);
  free(f->names);
  free(f->c);
  if (f->g >= 0)
    H5Gclose(f->g);
  memset(f, 0, sizeof(*f));
  f->g = H5I_INVALID_HID;
}

/* Groups reached through a second hard link are listed once (links may form cycles). */
static int seen_group(struct ck_h5r *r, haddr_t addr)
{
  size_t mask, i;

  if (r->nseen * 2 >= r->seencap) {
    size_t cap = r->seencap ? r->seencap * 2 : 64;
    haddr_t *ns = malloc(cap * sizeof(*ns)), *old = r->seen;
    size_t oldcap = r->seencap;
    if (ns == NULL)
      return -ENOMEM;
    for (i = 0; i < cap; i++)
      ns[i] = HADDR_UNDEF;
    r->seen = ns;
    r->seencap = cap;
    r->nseen = 0;
    for (i = 0; i < oldcap; i++)
      if (old[i] != HADDR_UNDEF)
        seen_group(r, old[i]);
    free(old);
  }
  mask = r->seencap - 1;
  for (i = (size_t)(addr * 0x9E3779B97F4A7C15ull >> 17) & mask; r->seen[i] != HADDR_UNDEF; i = (i + 1) & mask)
    if (r->seen[i] == addr)
      return 1;
  r->seen[i] = addr;
  r->nseen++;
  return 0;
}

/* Link c of frame f: classify a dataset, skip what is not one; *sub gets a group to enter. */
static int visit(struct ck_h5r *r, const struct frame *f, const struct child *c, const char *key, hid_t *sub)
{
  char *path = ck_asprintf("/%s", key);
  hid_t obj = H5I_INVALID_HID;
  H5O_info_t oi;
  int rc = 0;

  *sub = H5I_INVALID_HID;
  if (path == NULL) {
    rc = ck_err_set(r->err, -ENOMEM, "out of memory");
  } else if (!c->hard) {
    ck_h5r_skip(r, path, "link");
  } else if ((obj = open_child(f, c)) < 0) {
    rc = ck_h5_err(r->err, CK_EFORMAT, "%s: %s: cannot read object header", r->path, path);
  } else if (H5Iget_type(obj) == H5I_GROUP) {
    if (H5Oget_info2(obj, &oi, H5O_INFO_BASIC) < 0) /* basic: no attribute scan */
      rc = ck_h5_err(r->err, CK_EFORMAT, "%s: %s: cannot read object header", r->path, path);
    else if ((rc = seen_group(r, oi.addr)) > 0)
      ck_h5r_skip(r, path, "group already listed through another link");
    else if (rc < 0)
      ck_err_set(r->err, rc, "out of memory");
    else
      *sub = obj, obj = H5I_INVALID_HID; /* the caller's now */
    rc = rc > 0 ? 0 : rc;
  } else if (H5Iget_type(obj) == H5I_DATASET) {
    rc = ck_h5r_classify(r, obj, path, key);
  } else {
    ck_h5r_skip(r, path, "not a dataset");
  }
  if (obj >= 0)
    H5Oclose(obj);
  free(path);
  return rc;
}

static int key_set(char **key, size_t *cap, size_t plen, const char *name)
{
  size_t n = strlen(name), need = plen + 1 + n + 1;

  if (need > *cap) {
    char *k = realloc(*key, need * 2);
    if (k == NULL)
      return -ENOMEM;
    *key = k;
    *cap = need * 2;
  }
  if (plen > 0)
    (*key)[plen++] = '/';
  memcpy(*key + plen, name, n + 1);
  return 0;
}

/* ---- a big group classified by helper processes ----
 *
 * libhdf5 runs on one thread, and listing a group of 200,000 small datasets is
 * nearly all libhdf5: opening each, reading its type, storage and attributes. For
 * a group of at least PAR_MIN links, walkers - 1 forked processes each classify a
 * slice of it while this process walks the first slice; reaching a slice, the walk
 * takes that helper's records in link order instead of visiting. A helper records
 * only what the walk would have made itself (a tensor, a skipped leaf, the error
 * that stops the listing) and leaves the rest to it ("self": groups, links,
 * anything it could not open), so the listing is the same as on one process. A
 * helper that fails or dies leaves its whole slice to the walk. */

#define PAR_MIN 4096
#define WALKERS_MAX 8

static int walkers = 1;
static int live; /* helpers forked and not yet reaped, over all frames: at most walkers - 1 */
static unsigned long helpers_forked, helpers_used; /* for the tests */

unsigned long ck_h5r_helpers(unsigned long *used)
{
  *used = helpers_used;
  return helpers_forked;
}

void ck_h5_set_walkers(int n)
{
  walkers = n < 1 ? 1 : n > WALKERS_MAX ? WALKERS_MAX : n;
}

enum { REC_SELF, REC_TENSOR, REC_SKIP, REC_ERROR, REC_END };

struct helper {
  pid_t pid;
  int fd;            /* its records: a memfd, read after it exits */
  FILE *in;          /* reading them; NULL until the walk reaches the slice */
  size_t first, end; /* its slice of the frame's links */
  int failed;        /* the walk visits the slice itself */
};

static int put_rec(FILE *out, int kind, const void *a, size_t alen, const void *b, size_t blen)
{
  uint8_t k = (uint8_t)kind;
  uint64_t n[2] = { alen, blen };

  return fwrite(&k, 1, 1, out) == 1 && fwrite(n, sizeof(n), 1, out) == 1 && (alen == 0 || fwrite(a, alen, 1, out) == 1) &&
                 (blen == 0 || fwrite(b, blen, 1, out) == 1)
             ? 0
             : -1;
}

/* In the helper: classify links [first, end) of f and exit. */
static void helper_run(struct ck_h5r *r, struct frame *f, char *key, size_t kcap, size_t first, size_t end, int fd)
{
  FILE *out = fdopen(fd, "w");
  int rc = out ? 0 : -1, ev[2];

  for (size_t i = first; i < end && rc == 0; i++) {
    const struct child *c = &f->c[i];
    size_t n0 = r->n, s0 = r->nskipped;
    hid_t obj = H5I_INVALID_HID;
    char *path;
    int code;
    if (key_set(&key, &kcap, f->plen, f->names + c->off) != 0 || (path = ck_asprintf("/%s", key)) == NULL) {
      rc = -1;
      break;
    }
    if (!c->hard || (obj = open_child(f, c)) < 0 || H5Iget_type(obj) != H5I_DATASET) {
      rc = put_rec(out, REC_SELF, NULL, 0, NULL, 0);
    } else if ((code = ck_h5r_classify(r, obj, path, key)) == -ENOMEM) {
      rc = put_rec(out, REC_SELF, NULL, 0, NULL, 0); /* (this process's memory: the walk may have more) */
    } else if (code != 0) {
      rc = put_rec(out, REC_ERROR, &code, sizeof(code), r->err ? r->err->msg : "", r->err ? strlen(r->err->msg) : 0);
      end = i + 1; /* the walk stops there */
    } else if (r->n > n0) { /* the listing's own record (the same program: its pointers are remade), its path */
      const struct ck_h5_tensor *t = &r->t[r->n - 1];
      rc = put_rec(out, REC_TENSOR, t, sizeof(*t), t->path, strlen(t->path));
      rc = rc == 0 && (t->rank == 0 || fwrite(t->dims, (size_t)t->rank * sizeof(int64_t), 1, out) == 1) ? 0 : -1;
      r->n = n0; /* (its bytes stay in the arena: the helper is about to exit) */
    } else if (r->nskipped > s0) {
      rc = put_rec(out, REC_SKIP, r->skipped[s0], strlen(r->skipped[s0]), NULL, 0);
    } else {
      rc = put_rec(out, REC_SELF, NULL, 0, NULL, 0);
    }
    if (obj >= 0)
      H5Oclose(obj);
    H5Eclear2(H5E_DEFAULT);
    free(path);
  }
  ev[0] = r->ev.escaped_names;
  ev[1] = r->ev.cerebras_marks;
  if (rc == 0)
    rc = put_rec(out, REC_END, ev, sizeof(ev), NULL, 0);
  if (out == NULL || fflush(out) != 0)
    rc = -1;
  _exit(rc == 0 ? 0 : 1);
}

/* After listing f: fork the helpers of a big group. Without them (a small group,
 * one walker, an image, fork failing) the walk visits every link itself. */
static void helpers_start(struct ck_h5r *r, struct frame *f, char *key)
{
  pid_t parent = getpid();
  size_t per;
  int n = walkers - 1 - live; /* (a big group inside a big group: the outer one's may still run) */

  if (n < 1 || f->n < PAR_MIN || r->fd < 0 || (f->h = calloc((size_t)n, sizeof(*f->h))) == NULL)
    return;
  per = f->n / (size_t)(n + 1);
  for (int i = 0; i < n; i++) {
    struct helper *h = &f->h[f->nh];
    h->first = per * (size_t)(i + 1);
    h->end = i == n - 1 ? f->n : h->first + per;
    if ((h->fd = memfd_create("ckptd-h5-walk", MFD_CLOEXEC)) < 0)
      break;
    fflush(NULL);
    if ((h->pid = fork()) < 0) {
      close(h->fd);
      break;
    }
    if (h->pid == 0) {
      /* it dies with the walk (a tool's worker killed by a signal) */
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(1);
      helper_run(r, f, key, strlen(key) + 1, h->first, h->end, h->fd);
    }
    f->nh++;
    live++;
    helpers_forked++;
  }
}

/* Reap a helper (its status, or -1), retrying when a signal interrupts the wait:
 * ckptd's worker cancels with SIGTERM, whose handler does not restart calls. */
static int reap(struct helper *h)
{
  int status = -1;

  while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR)
    ;
  h->pid = 0;
  live--;
  return status;
}

static void helpers_free(struct frame *f)
{
  for (int i = 0; i < f->nh; i++) {
    struct helper *h = &f->h[i];
    if (h->pid > 0) {
      kill(h->pid, SIGKILL);
      reap(h);
    }
    if (h->in)
      fclose(h->in);
    else
      close(h->fd);
  }
  free(f->h);
  f->h = NULL;
  f->nh = 0;
}

static int get_rec(FILE *in, uint8_t *kind, uint64_t n[2])
{
  return fread(kind, 1, 1, in) == 1 && fread(n, sizeof(uint64_t), 2, in) == 2 ? 0 : -1;
}

/* A helper's last record: the evidence its classifications gathered. */
static void end_evidence(struct ck_h5r *r, struct helper *h, const uint64_t n[2])
{
  int ev[2];

  if (n[0] == sizeof(ev) && n[1] == 0 && fread(ev, sizeof(ev), 1, h->in) == 1) {
    r->ev.escaped_names |= ev[0];
    r->ev.cerebras_marks |= ev[1];
  }
}

/* The helper's next record: 1 to visit the link, 0 when taken, or the error. */
static int take(struct ck_h5r *r, struct helper *h)
{
  struct ck_h5_tensor t;
  uint64_t n[2];
  uint8_t kind;

  if (get_rec(h->in, &kind, n) != 0 || kind == REC_END) { /* (cannot happen: it exited 0) */
    if (kind == REC_END)
      end_evidence(r, h, n);
    h->failed = 1;
    return 1;
  }
  if (kind == REC_SELF)
    return 1;
  if (kind == REC_SKIP || kind == REC_ERROR) {
    char *s = n[0] < (1u << 20) && n[1] < (1u << 20) ? malloc(n[0] + n[1] + 1) : NULL;
    int code = CK_EFORMAT;
    if (s == NULL || (n[0] && fread(s, n[0], 1, h->in) != 1) || (n[1] && fread(s + n[0], n[1], 1, h->in) != 1)) {
      free(s);
      return ck_err_set(r->err, CK_EFORMAT, "%s: a listing helper's records are short", r->path);
    }
    s[n[0] + n[1]] = 0;
    if (kind == REC_SKIP) {
      ck_h5r_skip_line(r, s);
      return 0;
    }
    if (n[0] == sizeof(code))
      memcpy(&code, s, sizeof(code));
    code = code < 0 ? code : CK_EFORMAT;
    ck_err_set(r->err, code, "%s", s + n[0]);
    free(s);
    return code;
  }
  if (kind != REC_TENSOR || n[0] != sizeof(t) || fread(&t, sizeof(t), 1, h->in) != 1 || t.rank < 0 ||
      t.rank > CK_MAX_RANK || t.nlen > n[1] || n[1] > (1u << 20))
    return ck_err_set(r->err, CK_EFORMAT, "%s: a listing helper's records are corrupt", r->path);
  /* its pointers were the helper's: the path, dims and name are remade in the arena */
  if ((t.path = ck_h5r_arena_alloc(r, n[1] + 1)) == NULL ||
      (t.dims = ck_h5r_arena_alloc(r, ((size_t)t.rank + 1) * sizeof(int64_t))) == NULL)
    return ck_err_set(r->err, -ENOMEM, "out of memory");
  if (fread(t.path, n[1], 1, h->in) != 1 ||
      (t.rank > 0 && fread(t.dims, (size_t)t.rank * sizeof(int64_t), 1, h->in) != 1))
    return ck_err_set(r->err, CK_EFORMAT, "%s: a listing helper's records are short", r->path);
  t.path[n[1]] = 0;
  t.name = (uint8_t *)t.path + n[1] - t.nlen;
  if (ck_h5r_add_tensor(r, &t) != 0)
    return ck_err_set(r->err, -ENOMEM, "out of memory");
  return 0;
}

/* Link i of f: 1 for the walk to visit it, 0 when a helper's record stands for
 * the visit, or the error (the helper's, or reading its records). */
static int helped(struct ck_h5r *r, struct frame *f, size_t i)
{
  struct helper *h = NULL;
  int rc, status;

  for (int k = 0; k < f->nh; k++)
    if (i >= f->h[k].first && i < f->h[k].end)
      h = &f->h[k];
  if (h == NULL || h->failed)
    return 1;
  if (h->in == NULL) { /* the walk reached this slice: its helper must be done */
    status = reap(h);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || lseek(h->fd, 0, SEEK_SET) != 0 ||
        (h->in = fdopen(h->fd, "r")) == NULL) {
      h->failed = 1;
      return 1;
    }
    helpers_used++;
  }
  rc = take(r, h);
  if ((rc == 0 || rc == 1) && i + 1 == h->end && !h->failed) { /* the slice's last: its evidence */
    uint64_t n[2];
    uint8_t kind;
    if (get_rec(h->in, &kind, n) == 0 && kind == REC_END)
      end_evidence(r, h, n);
  }
  return rc;
}

int ck_h5r_walk(struct ck_h5r *r, hid_t root)
{
  struct frame *st = calloc(CK_H5_MAX_DEPTH, sizeof(*st));
  size_t depth = 0, kcap = 256;
  char *key = calloc(1, kcap);
  int rc = 0;

  if (st == NULL || key == NULL) {
    rc = ck_err_set(r->err, -ENOMEM, "out of memory");
    goto out;
  }
  st[depth].g = H5Oopen(root, ".", H5P_DEFAULT);
  if (st[depth++].g < 0 || (rc = list_group(r, &st[0], "")) != 0) {
    rc = rc ? rc : ck_h5_err(r->err, CK_EFORMAT, "%s: cannot open the root group", r->path);
    goto out;
  }
  helpers_start(r, &st[0], key);
  while (depth > 0 && rc == 0) {
    struct frame *f = &st[depth - 1];
    hid_t sub;
    if (f->next == f->n) {
      size_t cache = visit_cache(f);
      frame_free(f);
      if (--depth > 0 && visit_cache(&st[depth - 1]) != cache) /* back to the parent's links */
        ck_h5_set_cache(r->file, visit_cache(&st[depth - 1]));
      continue;
    }
    const struct child *c = &f->c[f->next++];
    if ((rc = key_set(&key, &kcap, f->plen, f->names + c->off)) != 0) {
      ck_err_set(r->err, rc, "out of memory");
      break;
    }
    if ((rc = helped(r, f, f->next - 1)) != 1) /* a helper's record, or its error */
      continue;
    if ((rc = visit(r, f, c, key, &sub)) != 0 || sub < 0)
      continue;
    if (depth == CK_H5_MAX_DEPTH) {
      H5Gclose(sub);
      rc = ck_err_set(r->err, CK_ELIMIT, "%s: groups nested deeper than %d levels (at /%.60s...)", r->path,
                      CK_H5_MAX_DEPTH, key);
      break;
    }
    st[depth].g = sub;
    st[depth].plen = strlen(key);
    if ((rc = list_group(r, &st[depth], key)) == 0)
      helpers_start(r, &st[depth], key);
    depth++;
  }
out:
  while (st && depth > 0)
    frame_free(&st[--depth]);
  free(st);
  free(key);
  return rc;
}

