/* Claims in a shared directory (see claim.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "claim.h"
#include "fileio.h"

#define CLAIM_MAX 4096

struct held {
  char *source, *path;
  char token[33];
  double expires;
  int lost;
  struct held *next;
};

struct ck_claims {
  char *dir;
  char instance[256];
  double lease;
  struct held *held;
  int nheld;
};

static double now_wall(void)
{
  struct timespec t;

  clock_gettime(CLOCK_REALTIME, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int ck_claim_format(const struct ck_claim_info *c, char *buf, size_t len)
{
  int n = snprintf(buf, len, "ckptd-claim 1\ninstance %s\nhost %s\npid %ld\ntag %s\ntoken %s\nexpires %.3f\nsource %s\n",
                   c->instance, c->host, c->pid, c->tag, c->token, c->expires, c->source);

  return n < 0 || (size_t)n >= len ? -1 : n;
}

/* Copy a value (the rest of its line) into dst. */
static void value(const char *v, const char *end, char *dst, size_t len)
{
  size_t n = (size_t)(end - v);

  if (n >= len)
    n = len - 1;
  memcpy(dst, v, n);
  dst[n] = 0;
}

int ck_claim_parse(const char *text, size_t len, struct ck_claim_info *c)
{
  const char *p = text, *end = text + len;
  int have = 0;

  memset(c, 0, sizeof(*c));
  if (len < 14 || memcmp(text, "ckptd-claim 1\n", 14) != 0)
    return -1;
  for (p += 14; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *sp;
    char num[64];
    size_t klen;
    if (nl == NULL)
      return -1; /* every line ends: a cut claim is not one */
    if ((sp = memchr(p, ' ', (size_t)(nl - p))) == NULL)
      return -1;
    klen = (size_t)(sp - p); /* the key is p[0, klen): compared only within the line */
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(p, k, klen) == 0)
    sp++;
    if (KEY("instance"))
      value(sp, nl, c->instance, sizeof(c->instance)), have |= 1;
    else if (KEY("host"))
      value(sp, nl, c->host, sizeof(c->host)), have |= 2;
    else if (KEY("pid"))
      value(sp, nl, num, sizeof(num)), c->pid = atol(num), have |= 4;
    else if (KEY("tag"))
      value(sp, nl, c->tag, sizeof(c->tag)), have |= 8;
    else if (KEY("token"))
      value(sp, nl, c->token, sizeof(c->token)), have |= 16;
    else if (KEY("expires"))
      value(sp, nl, num, sizeof(num)), c->expires = strtod(num, NULL), have |= 32;
    else if (KEY("source"))
      value(sp, nl, c->source, sizeof(c->source)), have |= 64;
#undef KEY
    p = nl + 1;
  }
  return have == 127 && c->token[0] && c->expires > 0 ? 0 : -1;
}

char *ck_claim_path(const char *dir, const char *source)
{
  uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull; /* two FNV-1a: 128 bits */

  for (const unsigned char *p = (const unsigned char *)source; *p; p++) {
    a = (a ^ *p) * 0x100000001b3ull;
    b = (b ^ *p) * 0x100000001b3ull;
  }
  return ck_asprintf("%s/%016llx%016llx.claim", dir, (unsigned long long)a, (unsigned long long)b);
}

struct ck_claims *ck_claims_new(const char *dir, const char *instance, double lease)
{
  struct ck_claims *cs = calloc(1, sizeof(*cs));

  if (cs == NULL || (cs->dir = strdup(dir)) == NULL) {
    free(cs);
    return NULL;
  }
  snprintf(cs->instance, sizeof(cs->instance), "%s", instance);
  for (char *p = cs->instance; *p; p++)
    if (*p == '\n')
      *p = ' ';
  cs->lease = lease;
  return cs;
}

static struct held *find(struct ck_claims *cs, const char *source)
{
  for (struct held *h = cs->held; h; h = h->next)
    if (strcmp(h->source, source) == 0)
      return h;
  return NULL;
}

/* Read a claim file: 0 and *c, -ENOENT, or CK_EFORMAT (cut or not a claim). */
static int read_claim(const char *path, struct ck_claim_info *c, struct stat *st)
{
  char buf[CLAIM_MAX];
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;
  ssize_t n;

  if (fd < 0)
    return -errno;
  if (fstat(fd, st) != 0 || (n = read(fd, buf, sizeof(buf))) < 0)
    rc = -errno;
  else if (n == (ssize_t)sizeof(buf) || ck_claim_parse(buf, (size_t)n, c) != 0)
    rc = CK_EFORMAT;
  close(fd);
  return rc;
}

/* Write text to a new private file beside the claims: its name, or NULL with err. */
static char *write_private(struct ck_claims *cs, const char *token, const char *text, struct ck_err *err)
{
  char *tmp = ck_asprintf("%s/.claim.%s.%ld", cs->dir, token, (long)getpid());
  size_t len = strlen(text);
  int fd;

  if (tmp == NULL) {
    ck_err_set(err, -ENOMEM, "out of memory");
    return NULL;
  }
  if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
    ck_err_set(err, -errno, "%s: cannot create a claim: %s", cs->dir, strerror(errno));
    free(tmp);
    return NULL;
  }
  if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
    ck_err_set(err, errno ? -errno : -EIO, "%s: cannot write a claim: %s", tmp, strerror(errno ? errno : EIO));
    close(fd);
    unlink(tmp);
    free(tmp);
    return NULL;
  }
  close(fd);
  return tmp;
}

static void new_token(char out[33])
{
  unsigned char r[16];

  if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) { /* never on Linux >= 3.17; still unique enough */
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    uint64_t v = (uint64_t)t.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uint64_t)t.tv_sec;
    memcpy(r, &v, 8);
    memcpy(r + 8, &v, 8);
  }
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static int claim_text(struct ck_claims *cs, const char *source, const char *token, double expires, char *buf,
                      size_t len)
{
  struct ck_claim_info c = { .pid = (long)getpid(), .expires = expires };

  snprintf(c.instance, sizeof(c.instance), "%s", cs->instance);
  gethostname(c.host, sizeof(c.host) - 1);
  snprintf(c.tag, sizeof(c.tag), "%s", ck_temp_instance());
  snprintf(c.token, sizeof(c.token), "%s", token);
  snprintf(c.source, sizeof(c.source), "%s", source);
  for (char *p = c.source; *p; p++)
    if (*p == '\n')
      *p = '?';
  return ck_claim_format(&c, buf, len);
}

/* 1 if a claim is this instance's own, left by an earlier run on this host whose
 * process is gone (a restart after a crash): taken over at once. */
static int own_leftover(const struct ck_claims *cs, const struct ck_claim_info *c)
{
  char host[128] = "";

  gethostname(host, sizeof(host) - 1);
  return strcmp(c->instance, cs->instance) == 0 && strcmp(c->host, host) == 0 && c->pid > 0 &&
         c->pid != (long)getpid() && kill((pid_t)c->pid, 0) != 0 && errno == ESRCH;
}

/* Replace the expired claim at path (the one with token seen, or an unreadable file
 * with inode seen_ino) by ours (tmp). One taker at a time: the takeover lock
 * (path.takeover, a link of our claim, stale after a lease) serializes them, the
 * claim is read again under it, and rename() replaces it atomically, so the name
 * never disappears under its holder. 0 when ours, 1 when someone else's now. */
static int take_over(struct ck_claims *cs, const char *path, const char *tmp, const char *seen, uint64_t seen_ino)
{
  char *lock = ck_asprintf("%s.takeover", path);
  struct ck_claim_info now;
  struct stat st;
  int r, rc = 1;

  if (lock == NULL)
    return 1;
  if (link(tmp, lock) != 0) {
    if (errno == EEXIST && lstat(lock, &st) == 0 && now_wall() - (double)st.st_mtime > cs->lease)
      unlink(lock); /* a taker that died holding it: the next look goes ahead */
    free(lock);
    return 1;
  }
  r = read_claim(path, &now, &st);
  if ((r == 0 && strcmp(now.token, seen) == 0) || (r == CK_EFORMAT && (uint64_t)st.st_ino == seen_ino) ||
      r == -ENOENT)
    rc = rename(tmp, path) == 0 ? 0 : 1;
  unlink(lock);
  free(lock);
  return rc;
}

int ck_claim_take(struct ck_claims *cs, const char *source, struct ck_claim_info *other, struct ck_err *err)
{
  char text[CLAIM_MAX], token[33], *path = ck_claim_path(cs->dir, source), *tmp = NULL;
  double expires = now_wall() + cs->lease;
  struct held *h = NULL;
  int rc = CK_CLAIM_HELD;

  memset(other, 0, sizeof(*other));
  if (find(cs, source)) {
    free(path);
    return CK_CLAIM_OURS;
  }
  new_token(token);
  if (path == NULL || claim_text(cs, source, token, expires, text, sizeof(text)) < 0) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  if ((tmp = write_private(cs, token, text, err)) == NULL) {
    rc = err->code;
    goto out;
  }
  for (int attempt = 0; attempt < 3; attempt++) {
    struct stat st;
    int r;
    if (link(tmp, path) == 0) {
      rc = CK_CLAIM_OURS;
      break;
    }
    if (errno != EEXIST) {
      rc = ck_err_set(err, -errno, "%s: cannot claim %s: %s", cs->dir, source, strerror(errno));
      break;
    }
    r = read_claim(path, other, &st);
    if (r == -ENOENT)
      continue; /* released meanwhile: try again */
    if (r != 0 && r != CK_EFORMAT) {
      rc = ck_err_set(err, r, "%s: cannot read: %s", path, strerror(-r));
      break;
    }
    if (r == CK_EFORMAT) {
      /* not a claim ckptd writes (they appear whole): someone's stray file, taken
       * over once it is older than a lease */
      snprintf(other->instance, sizeof(other->instance), "(an unreadable claim file)");
      if (now_wall() - (double)st.st_mtime < cs->lease) {
        rc = CK_CLAIM_HELD;
        break;
      }
    } else if (other->expires > now_wall() && !own_leftover(cs, other)) {
      rc = CK_CLAIM_HELD; /* live */
      break;
    }
    rc = take_over(cs, path, tmp, r == 0 ? other->token : "", (uint64_t)st.st_ino) == 0 ? CK_CLAIM_TOOK_OVER
                                                                                        : CK_CLAIM_HELD;
    break;
  }
  if (rc == CK_CLAIM_OURS || rc == CK_CLAIM_TOOK_OVER) {
    if ((h = calloc(1, sizeof(*h))) == NULL || (h->source = strdup(source)) == NULL) {
      free(h);
      unlink(path);
      rc = ck_err_set(err, -ENOMEM, "out of memory");
      goto out;
    }
    h->path = path;
    path = NULL;
    snprintf(h->token, sizeof(h->token), "%s", token);
    h->expires = expires;
    h->next = cs->held;
    cs->held = h;
    cs->nheld++;
  }
out:
  if (tmp) {
    unlink(tmp); /* after a link its claim lives on under the claim's name; after a rename it is gone */
    free(tmp);
  }
  free(path);
  return rc;
}

/* 1 if the claim at h->path still carries our token, 0 if it does not (gone, or
 * another's), -1 if it cannot be read now (an I/O error on a network filesystem:
 * not a loss). */
static int still_ours(const struct held *h)
{
  struct ck_claim_info c;
  struct stat st;
  int r = read_claim(h->path, &c, &st);

  if (r == 0)
    return strcmp(c.token, h->token) == 0;
  return r == -ENOENT || r == CK_EFORMAT ? 0 : -1;
}

void ck_claims_renew(struct ck_claims *cs, void (*lost)(void *ctx, const char *source), void *ctx)
{
  struct held *next;

  for (struct held *h = cs->held; h; h = next) {
    char text[CLAIM_MAX], *tmp;
    struct ck_err err = { 0 };
    double now = now_wall();
    int ours;
    next = h->next; /* lost() may end its job, and the job's end release h */
    if (h->lost)
      continue;
    /* Renewals come every third of a lease. One that finds less than a sixth left was
     * late (this process stopped or starved): a taker may be about to act, so renewing
     * now could overwrite its claim. Give it up instead. */
    ours = h->expires - now > cs->lease / 6 ? still_ours(h) : 0;
    if (ours == 0) {
      h->lost = 1;
      if (lost)
        lost(ctx, h->source);
      continue;
    }
    if (ours < 0 || claim_text(cs, h->source, h->token, now + cs->lease, text, sizeof(text)) < 0 ||
        (tmp = write_private(cs, h->token, text, &err)) == NULL)
      continue; /* tried again at the next renewal, well before expiry */
    if (rename(tmp, h->path) == 0)
      h->expires = now + cs->lease;
    else
      unlink(tmp);
    free(tmp);
  }
}

void ck_claim_release(struct ck_claims *cs, const char *source)
{
  for (struct held **pp = &cs->held; *pp; pp = &(*pp)->next) {
    struct held *h = *pp;
    if (strcmp(h->source, source) != 0)
      continue;
    if (!h->lost && still_ours(h) == 1)
      unlink(h->path);
    *pp = h->next;
    free(h->source);
    free(h->path);
    free(h);
    cs->nheld--;
    return;
  }
}

int ck_claims_held(const struct ck_claims *cs)
{
  return cs ? cs->nheld : 0;
}

void ck_claims_free(struct ck_claims *cs)
{
  if (cs == NULL)
    return;
  while (cs->held)
    ck_claim_release(cs, cs->held->source);
  free(cs->dir);
  free(cs);
}
