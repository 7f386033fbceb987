/* Claims in a shared directory (daemon/claim.c): the text, one holder at a time,
 * expiry and takeover, renewal, and many processes racing for the same sources. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../daemon/claim.h"
#include "tap.h"
#include "testutil.h"

static void nap(double s)
{
  struct timespec t = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
  nanosleep(&t, NULL);
}

static void text(void)
{
  struct ck_claim_info c = { "login1:/var/lib/ckptd", "login1", 4242, "0a1b2c3d", "00112233445566778899aabbccddeeff",
                             1800000000.5, "/models/run1/model.ckpt-100" }, back;
  char buf[4096];
  int n = ck_claim_format(&c, buf, sizeof(buf)), cut_ok = 1;

  ok(n > 0 && ck_claim_parse(buf, (size_t)n, &back) == 0 && strcmp(back.instance, c.instance) == 0 &&
     strcmp(back.host, "login1") == 0 && back.pid == 4242 && strcmp(back.tag, c.tag) == 0 &&
     strcmp(back.token, c.token) == 0 && back.expires == c.expires && strcmp(back.source, c.source) == 0,
     "a claim's text reads back");
  for (int len = 0; len < n; len++)
    cut_ok &= ck_claim_parse(buf, (size_t)len, &back) != 0;
  ok(cut_ok, "a claim cut at any byte is not a claim");
  ok(ck_claim_parse("hello\n", 6, &back) != 0, "another file is not a claim");
  ok(ck_claim_format(&c, buf, 20) < 0, "a claim that does not fit is refused, not cut");
}

static void one_holder(const char *dir)
{
  struct ck_claims *a = ck_claims_new(dir, "A", 30), *b = ck_claims_new(dir, "B", 30);
  struct ck_claim_info o;
  struct ck_err err = { 0 };
  char *path = ck_claim_path(dir, "/m/s1");
  struct stat st;

  ok(ck_claim_take(a, "/m/s1", &o, &err) == CK_CLAIM_OURS, "A claims s1");
  ok(stat(path, &st) == 0, "the claim file exists");
  ok(ck_claim_take(b, "/m/s1", &o, &err) == CK_CLAIM_HELD && strcmp(o.instance, "A") == 0 && o.pid == getpid(),
     "B finds it held by A (%s, pid %ld)", o.instance, o.pid);
  ok(ck_claim_take(a, "/m/s1", &o, &err) == CK_CLAIM_OURS && ck_claims_held(a) == 1, "A asking again holds it once");
  ck_claim_release(a, "/m/s1");
  ok(stat(path, &st) != 0 && ck_claims_held(a) == 0, "released: the file is gone");
  ok(ck_claim_take(b, "/m/s1", &o, &err) == CK_CLAIM_OURS, "then B gets it");
  ck_claims_free(b); /* releases */
  ok(stat(path, &st) != 0, "freeing releases what is held");
  ck_claims_free(a);
  free(path);
}

static int lost_count;
static char lost_src[256];

static void on_lost(void *ctx, const char *src)
{
  (void)ctx;
  lost_count++;
  snprintf(lost_src, sizeof(lost_src), "%s", src);
}

static void expiry(const char *dir)
{
  struct ck_claims *c = ck_claims_new(dir, "C", 0.3), *b = ck_claims_new(dir, "B", 30);
  struct ck_claims *e = ck_claims_new(dir, "E", 1.0);
  struct ck_claim_info o;
  struct ck_err err = { 0 };

  ok(ck_claim_take(c, "/m/s2", &o, &err) == CK_CLAIM_OURS, "C claims s2 with a 0.3 s lease");
  nap(0.5);
  ok(ck_claim_take(b, "/m/s2", &o, &err) == CK_CLAIM_TOOK_OVER && strcmp(o.instance, "C") == 0 &&
     strlen(o.tag) == 8, "after the lease B takes it over and learns its holder and tag");
  ck_claims_renew(c, on_lost, NULL);
  ok(lost_count == 1 && strcmp(lost_src, "/m/s2") == 0, "C's renewal finds it lost");
  ck_claim_release(c, "/m/s2");
  ok(ck_claim_take(c, "/m/s2", &o, &err) == CK_CLAIM_HELD && strcmp(o.instance, "B") == 0,
     "C's release after the loss left B's claim alone");

  ok(ck_claim_take(e, "/m/s4", &o, &err) == CK_CLAIM_OURS, "E claims s4 with a 1 s lease");
  for (int i = 0; i < 4; i++) {
    nap(0.33);
    ck_claims_renew(e, on_lost, NULL);
  }
  ok(ck_claim_take(b, "/m/s4", &o, &err) == CK_CLAIM_HELD && lost_count == 1,
     "renewed every third of a lease, it is still E's after 1.3 s");
  ck_claims_free(b);
  ck_claims_free(c);
  ck_claims_free(e);
}

static void leftovers(const char *dir)
{
  struct ck_claims *d2 = ck_claims_new(dir, "D", 30), *b = ck_claims_new(dir, "B", 30);
  struct ck_claim_info o;
  struct ck_err err = { 0 };
  char *path = ck_claim_path(dir, "/m/s5");
  struct timespec old[2] = { { time(NULL) - 100, 0 }, { time(NULL) - 100, 0 } };

  int status = -1;
  pid_t pid = fork();

  if (pid == 0) { /* D's first run claims s5, then dies without releasing it */
    struct ck_claims *d1 = ck_claims_new(dir, "D", 30);
    _exit(ck_claim_take(d1, "/m/s5", &o, &err) == CK_CLAIM_OURS ? 0 : 1);
  }
  waitpid(pid, &status, 0);
  ok(status == 0, "D claims s5, then dies");
  ok(ck_claim_take(d2, "/m/s5", &o, &err) == CK_CLAIM_TOOK_OVER && o.pid == pid,
     "D's next run takes its own leftover at once");
  ck_claims_free(d2);

  ok(tu_write_file(path, "garbage", 7) == 0, "a stray file under a claim's name");
  ok(ck_claim_take(b, "/m/s5", &o, &err) == CK_CLAIM_HELD, "a fresh unreadable claim counts as held");
  utimensat(AT_FDCWD, path, old, 0);
  ok(ck_claim_take(b, "/m/s5", &o, &err) == CK_CLAIM_TOOK_OVER, "one older than a lease is taken over");
  ck_claims_free(b);
  free(path);
}

/* 6 processes race for the same 40 sources: each is claimed exactly once. */
static void race(const char *dir)
{
  enum { PROCS = 6, SOURCES = 40 };
  int fds[2], count[SOURCES] = { 0 }, total = 0, once = 1;
  char line[64];
  FILE *in;

  if (pipe(fds) != 0)
    return;
  for (int p = 0; p < PROCS; p++) {
    if (fork() == 0) {
      char name[16], src[32];
      struct ck_claims *cs;
      struct ck_claim_info o;
      struct ck_err err = { 0 };
      snprintf(name, sizeof(name), "P%d", p);
      cs = ck_claims_new(dir, name, 30);
      close(fds[0]);
      for (int i = 0; i < SOURCES; i++) {
        snprintf(src, sizeof(src), "/race/%d", i);
        if (ck_claim_take(cs, src, &o, &err) == CK_CLAIM_OURS)
          dprintf(fds[1], "%d\n", i);
      }
      _exit(0); /* keeps its claims: nobody else may get them */
    }
  }
  close(fds[1]);
  in = fdopen(fds[0], "r");
  while (in && fgets(line, sizeof(line), in)) {
    int i = atoi(line);
    if (i >= 0 && i < SOURCES)
      count[i]++, total++;
  }
  if (in)
    fclose(in);
  while (wait(NULL) > 0)
    ;
  for (int i = 0; i < SOURCES; i++)
    once &= count[i] == 1;
  ok(once && total == SOURCES, "%d processes racing for %d sources: %d claims, each source exactly once", PROCS,
     SOURCES, total);
}

/* 6 processes find the same expired claim at once: exactly one takes it over. */
static void takeover_race(const char *dir)
{
  enum { PROCS = 6 };
  struct ck_claim_info o;
  struct ck_err err = { 0 };
  int fds[2], took = 0, held = 0;
  char line[16];
  FILE *in;
  pid_t z = fork();

  if (z == 0) { /* Z claims it with a 0.2 s lease, and dies holding it */
    struct ck_claims *cs = ck_claims_new(dir, "Z", 0.2);
    _exit(ck_claim_take(cs, "/m/race", &o, &err) == CK_CLAIM_OURS ? 0 : 1);
  }
  waitpid(z, NULL, 0);
  nap(0.3);
  if (pipe(fds) != 0)
    return;
  for (int p = 0; p < PROCS; p++) {
    if (fork() == 0) {
      char name[16];
      struct ck_claims *cs;
      snprintf(name, sizeof(name), "T%d", p);
      cs = ck_claims_new(dir, name, 30);
      close(fds[0]);
      dprintf(fds[1], "%d\n", ck_claim_take(cs, "/m/race", &o, &err));
      _exit(0);
    }
  }
  close(fds[1]);
  in = fdopen(fds[0], "r");
  while (in && fgets(line, sizeof(line), in)) {
    took += atoi(line) == CK_CLAIM_TOOK_OVER;
    held += atoi(line) == CK_CLAIM_HELD;
  }
  if (in)
    fclose(in);
  while (wait(NULL) > 0)
    ;
  ok(took == 1 && held == PROCS - 1, "%d takers of one expired claim: %d took it over, %d found it held", PROCS, took,
     held);
}

static void unusable(void)
{
  struct ck_claims *a = ck_claims_new("/nonexistent/claims", "A", 30);
  struct ck_claim_info o;
  struct ck_err err = { 0 };

  ok(ck_claim_take(a, "/m/s", &o, &err) < 0 && strstr(err.msg, "/nonexistent/claims") != NULL,
     "a missing claims_dir is an error naming it: %s", err.msg);
  ck_claims_free(a);
}

int main(void)
{
  char *dir = tu_tmpdir();

  if (dir == NULL)
    return 1;
  text();
  one_holder(dir);
  expiry(dir);
  leftovers(dir);
  race(dir);
  takeover_race(dir);
  unusable();
  tu_rmtree(dir);
  free(dir);
  printf("1..%d\n", tap_count);
  return tap_failed ? 1 : 0;
}
