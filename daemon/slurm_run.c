/* The Slurm executor's supervisor: `ckptd --slurm-job [OPTIONS] -- WORKER-ARGV`.
 *
 * DESIGN: the pool runs every conversion as a local child speaking the worker
 * protocol on fd 3 (pool.c). With `executor = slurm` that child is this supervisor:
 * it writes a batch script beside the output (on the shared filesystem the compute
 * node also mounts), submits it with `sbatch --parsable`, says `slurm JOBID`, then
 * every poll_seconds relays the worker's protocol lines from the report file the
 * script appends to, and asks `squeue` (then `sacct`, if accounting is on) for the
 * job's state. The report file is what decides: it holds the worker's own result
 * and exit status, so the outcome is known with accounting off, and Slurm's state
 * only explains a job that ended without one (slurm.h's ck_slurm_outcome). SIGTERM
 * (shutdown, the source gone, `ckpt ctl skip`, the daemon's death through
 * PR_SET_PDEATHSIG) is an `scancel`. Its run files are temporaries of its own pid,
 * so the pool removes them if it is killed; the remote worker's temporaries carry
 * the job id and are removed here. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "slurm.h"
#include "slurm_run.h"
#include "wproto.h"

#define OUT_MAX 8192

static volatile sig_atomic_t stop_sig;

static void on_term(int sig)
{
  stop_sig = sig;
}

struct run {
  uint64_t job;
  double poll;
  char *report, *script, *out, *dir;
  char tag[9];                 /* the remote worker's temporaries' instance */
  off_t off;                   /* report bytes read so far */
  char line[CK_WPROTO_LINE_MAX + 64];
  size_t linelen;
  char result[CK_WPROTO_LINE_MAX + 2];
  int have_result, result_stopped;
  int exit_status;
  char host[128];
  int state;
  char state_text[256];        /* what Slurm said, for messages */
  int outage;                  /* the controller is unreachable (logged once) */
};

static void say(const char *line)
{
  size_t len = strlen(line), off = 0;

  while (off < len) {
    ssize_t n = write(3, line + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    off += (size_t)n;
  }
}

static void say_msg(const struct ck_wmsg *m)
{
  char buf[CK_WPROTO_LINE_MAX + 64];

  ck_wmsg_format(m, buf, sizeof(buf));
  say(buf);
}

static void fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(int code, const char *fmt, ...)
{
  struct ck_wmsg m = { .type = CK_WMSG_FAIL, .code = code };
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(m.text, sizeof(m.text), fmt, ap);
  va_end(ap);
  say_msg(&m);
}

/* Run a command with stdin from /dev/null; its stdout and stderr (each bounded) in
 * out and err. The exit status, or a negative errno (-ETIMEDOUT after timeout s). */
static int run_cmd(char *const argv[], char *out, char *err, int timeout)
{
  int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, status = 0, rc;
  size_t no = 0, ne = 0;
  struct timespec t0;
  pid_t pid;

  out[0] = err[0] = 0;
  if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
    rc = -errno;
    goto out;
  }
  if ((pid = fork()) < 0) {
    rc = -errno;
    goto out;
  }
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    dup2(null, 0);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    execvp(argv[0], argv);
    dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  close(po[1]);
  close(pe[1]);
  po[1] = pe[1] = -1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int open_fds = 2; open_fds > 0;) {
    struct pollfd fds[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
    struct timespec t;
    char buf[1024];
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec > timeout || (poll(fds, 2, 1000) < 0 && errno != EINTR)) {
      kill(pid, SIGKILL);
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
      rc = -ETIMEDOUT;
      goto out;
    }
    for (int i = 0; i < 2; i++) {
      char *dst = i ? err : out;
      size_t *n = i ? &ne : &no;
      ssize_t got;
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      if ((got = read(fds[i].fd, buf, sizeof(buf))) <= 0) {
        close(fds[i].fd);
        if (i)
          pe[0] = -1;
        else
          po[0] = -1;
        open_fds--;
        continue;
      }
      if (*n + (size_t)got < OUT_MAX) {
        memcpy(dst + *n, buf, (size_t)got);
        *n += (size_t)got;
        dst[*n] = 0;
      }
    }
    if (po[0] < 0 && pe[0] < 0)
      break;
  }
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
out:
  for (int i = 0; i < 2; i++) {
    if (po[i] >= 0)
      close(po[i]);
    if (pe[i] >= 0)
      close(pe[i]);
  }
  return rc;
}

/* One line of the report: the script's host and exit lines, or the worker's own. */
static void report_line(struct run *r, const char *line)
{
  struct ck_wmsg m;

  if (strncmp(line, "host ", 5) == 0) {
    snprintf(r->host, sizeof(r->host), "%s", line + 5);
    return;
  }
  if (strncmp(line, "exit ", 5) == 0) {
    r->exit_status = atoi(line + 5);
    return;
  }
  if (ck_wmsg_parse(line, &m) != 0)
    return;
  if (m.type == CK_WMSG_DONE || m.type == CK_WMSG_FAIL) {
    snprintf(r->result, sizeof(r->result), "%.*s\n", (int)sizeof(r->result) - 2, line);
    r->have_result = 1;
    r->result_stopped = m.type == CK_WMSG_FAIL && m.code == -ECANCELED;
  } else if (m.type == CK_WMSG_PROGRESS || m.type == CK_WMSG_NOTE) {
    say_msg(&m);
  }
}

/* What the report gained since the last look (opened afresh each time: on NFS a new
 * open revalidates the cache, close-to-open consistency). */
static void read_report(struct run *r)
{
  int fd = open(r->report, O_RDONLY | O_CLOEXEC);
  char buf[16384];
  ssize_t n;

  if (fd < 0)
    return;
  while ((n = pread(fd, buf, sizeof(buf), r->off)) > 0) {
    r->off += n;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n') {
        if (r->linelen < sizeof(r->line) - 1)
          r->line[r->linelen++] = buf[i];
        continue;
      }
      r->line[r->linelen] = 0;
      if (r->linelen < sizeof(r->line) - 1) /* an overlong line is not the protocol's */
        report_line(r, r->line);
      r->linelen = 0;
    }
  }
  close(fd);
}

static void outage(struct run *r, int now, const char *text)
{
  if (now && !r->outage)
    fprintf(stderr, "slurm job %llu: the controller cannot be reached (%s); still following it every %g s\n",
            (unsigned long long)r->job, text, r->poll);
  else if (!now && r->outage)
    fprintf(stderr, "slurm job %llu: the controller answers again\n", (unsigned long long)r->job);
  r->outage = now;
}

/* The job's state: squeue (which knows it until MinJobAge after its end), then sacct
 * (if accounting is on), for who cancelled it and a state squeue forgot. */
static void query(struct run *r)
{
  char id[32], out[OUT_MAX], err[OUT_MAX];
  char *sq[] = { "squeue", "-h", "--states=all", "-j", id, "-o", "%T|%r", NULL };
  char *sa[] = { "sacct", "-n", "-X", "-P", "-j", id, "-o", "State", NULL };
  int rc;

  snprintf(id, sizeof(id), "%llu", (unsigned long long)r->job);
  rc = run_cmd(sq, out, err, 120);
  if (rc == 0 && out[0]) {
    char *bar = strchr(out, '|'), *nl = strchr(out, '\n');
    if (nl)
      *nl = 0;
    r->state = ck_slurm_state(out);
    snprintf(r->state_text, sizeof(r->state_text), "%s%s%s%s", ck_slurm_state_name(r->state),
             bar && strcmp(bar + 1, "None") ? " (" : "", bar && strcmp(bar + 1, "None") ? bar + 1 : "",
             bar && strcmp(bar + 1, "None") ? ")" : "");
    outage(r, 0, NULL);
  } else if (rc == 0 || ck_slurm_unknown_job(err)) {
    r->state = CK_SLURM_GONE;
    snprintf(r->state_text, sizeof(r->state_text), "no longer known to squeue");
    outage(r, 0, NULL);
  } else {
    char *nl = strchr(err, '\n');
    if (nl)
      *nl = 0;
    outage(r, rc == -ETIMEDOUT || ck_slurm_unreachable(err), rc == -ETIMEDOUT ? "squeue timed out" : err);
    return;
  }
  if (r->state == CK_SLURM_GONE || r->state == CK_SLURM_CANCELLED) {
    if (run_cmd(sa, out, err, 60) == 0 && out[0]) {
      char *nl = strchr(out, '\n');
      int st;
      if (nl)
        *nl = 0;
      if ((st = ck_slurm_state(out)) != CK_SLURM_UNKNOWN) {
        r->state = st;
        snprintf(r->state_text, sizeof(r->state_text), "%.*s", (int)sizeof(r->state_text) - 1, out);
      }
    }
  }
}

static void nap(double seconds)
{
  struct timespec t = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };

  if (!stop_sig)
    nanosleep(&t, NULL); /* a signal ends it early */
}

/* Who cancelled the job, as far as Slurm says. */
static void cancelled_by(const struct run *r, char *buf, size_t len)
{
  long uid = ck_slurm_cancelled_by(r->state_text);
  struct passwd *pw = uid >= 0 ? getpwuid((uid_t)uid) : NULL;

  if (pw)
    snprintf(buf, len, "by %s (uid %ld)", pw->pw_name, uid);
  else if (uid >= 0)
    snprintf(buf, len, "by uid %ld", uid);
  else
    snprintf(buf, len, "by someone else (Slurm did not say who: %s)", r->state_text);
}

/* The job's own output (its stderr: libhdf5, the loader, a sanitizer), a log event a line. */
static void relay_job_output(const struct run *r)
{
  FILE *f = fopen(r->out, "r");
  char line[1024];
  int n = 0;

  if (f == NULL)
    return;
  while (fgets(line, sizeof(line), f) && n++ < 50) {
    line[strcspn(line, "\n")] = 0;
    if (line[0])
      fprintf(stderr, "slurm job %llu: %s\n", (unsigned long long)r->job, line);
  }
  fclose(f);
}

static int write_new(const char *path, const char *text, int mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  size_t len = strlen(text);
  int rc = 0;

  if (fd < 0)
    return -errno;
  if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0)
    rc = errno ? -errno : -EIO;
  close(fd);
  return rc;
}

static int submit(struct run *r, const struct ck_slurm_req *q)
{
  char out[OUT_MAX], err[OUT_MAX];
  int bad = 0, rc;
  char **argv = ck_slurm_sbatch_argv(q, &bad);

  if (argv == NULL) {
    fail(bad ? CK_ESCHEDCONF : -ENOMEM, "%s", bad ? "[slurm] options: an unterminated quote" : "out of memory");
    return -1;
  }
  rc = run_cmd(argv, out, err, 120);
  ck_strv_free(argv);
  err[strcspn(err, "\n")] = 0;
  if (rc == 0 && ck_slurm_parse_jobid(out, &r->job) == 0)
    return 0;
  if (rc == 126 || rc == 127 || (rc < 0 && rc != -ETIMEDOUT))
    fail(CK_ESCHEDCONF, "cannot run sbatch: %s", rc < 0 ? strerror(-rc) : err);
  else if (rc == -ETIMEDOUT || ck_slurm_unreachable(err))
    fail(CK_ESCHED, "the slurm controller cannot be reached: %s", rc == -ETIMEDOUT ? "sbatch timed out" : err);
  else if (rc == 0)
    fail(CK_ESCHED, "sbatch printed no job id: %.200s", out);
  else
    fail(CK_ESCHEDCONF, "sbatch refused the job: %s", err[0] ? err : "(no message)");
  return -1;
}

/* Say how the job ended; the supervisor's exit status. */
static int finish(struct run *r, int we_cancelled, int src_gone)
{
  struct ck_slurm_end e = { r->state, 0, 0, -1, we_cancelled };
  int outcome;

  /* the result may reach this host's view of the shared filesystem a moment late */
  for (int i = 0; i < 5; i++) {
    read_report(r);
    if (r->have_result || r->exit_status >= 0 || we_cancelled)
      break;
    nap(1);
  }
  e.have_result = r->have_result;
  e.result_stopped = r->result_stopped;
  e.exit_status = r->exit_status;
  outcome = ck_slurm_outcome(&e);
  if (outcome != CK_SLURM_USE_RESULT || strncmp(r->result, "fail", 4) == 0)
    relay_job_output(r);
  switch (outcome) {
  case CK_SLURM_USE_RESULT:
    say(r->result);
    break;
  case CK_SLURM_ABORTED: /* said even when the pool sent the signal: a stop it did not send is no crash */
    if (src_gone)
      fail(-EAGAIN, "the source disappeared: slurm job %llu cancelled", (unsigned long long)r->job);
    else
      fail(-ECANCELED, "stopped: slurm job %llu cancelled", (unsigned long long)r->job);
    break;
  case CK_SLURM_CANCELLED_BY: {
    char who[320];
    cancelled_by(r, who, sizeof(who));
    fail(CK_ECANCELLED, "slurm job %llu was cancelled %s", (unsigned long long)r->job, who);
    break;
  }
  case CK_SLURM_REFUSED:
    fail(CK_ESCHEDCONF, "slurm job %llu on %s could not run the worker (exit status %d): is ckptd installed at the "
         "same path on the compute nodes?", (unsigned long long)r->job, r->host[0] ? r->host : "its node",
         r->exit_status);
    break;
  case CK_SLURM_CRASHED:
    fprintf(stderr, "slurm job %llu: the worker died by signal %d (%s) on %s\n", (unsigned long long)r->job,
            r->exit_status - 128, strsignal(r->exit_status - 128), r->host[0] ? r->host : "its node");
    break;
  default:
    fail(CK_ESCHED, "slurm job %llu ended %s%s%s without a result: retrying", (unsigned long long)r->job,
         r->state_text[0] ? r->state_text : "(state unknown)", r->host[0] ? " on " : "", r->host);
    break;
  }
  if (r->dir)
    ck_temp_remove_pid(r->dir, r->tag, (long)r->job);
  return outcome == CK_SLURM_CRASHED ? CK_SLURM_EXIT_CRASHED : 0;
}

/* 1 if the source is gone (a bundle's key is its prefix: its .index tells). */
static int source_gone(const char *src)
{
  struct stat st;
  char *index;
  int gone;

  if (stat(src, &st) == 0 || errno != ENOENT)
    return 0;
  index = ck_asprintf("%s.index", src);
  gone = index && stat(index, &st) != 0 && errno == ENOENT;
  free(index);
  return gone;
}

static void usage_fail(const char *what)
{
  fail(CK_EINVAL, "--slurm-job: %s", what);
  exit(2);
}

static void cleanup(struct run *r)
{
  if (r->script)
    unlink(r->script);
  if (r->out)
    unlink(r->out);
  if (r->report)
    unlink(r->report);
}

int ck_slurm_run_main(int argc, char **argv)
{
  struct run r = { .poll = 5, .exit_status = -1 };
  struct ck_slurm_req q = { 0 };
  struct sigaction sa = { 0 };
  char **wargv = NULL, *script_text = NULL, *base = NULL, *name = NULL, id[32];
  const char *dst = NULL, *src = NULL;
  int i, status = 0;

  fcntl(3, F_SETFD, FD_CLOEXEC); /* no command it runs keeps the protocol pipe open */
  signal(SIGPIPE, SIG_IGN);      /* a daemon gone mid-write: still scancel and clean up */
  sa.sa_handler = on_term;       /* no SA_RESTART: a signal ends a nap */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1)
    stop_sig = SIGTERM;
  q.cpus = 1;
  for (i = 0; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
    if (i + 1 >= argc)
      usage_fail("an option without its value");
    if (strcmp(argv[i], "--poll") == 0)
      r.poll = atof(argv[i + 1]) >= 0.2 ? atof(argv[i + 1]) : 5;
    else if (strcmp(argv[i], "--mem-mb") == 0)
      q.mem_mb = strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--cpus") == 0)
      q.cpus = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--options") == 0)
      q.options = argv[i + 1];
    else
      usage_fail(argv[i]);
  }
  if (i >= argc - 1)
    usage_fail("no worker command line after --");
  wargv = argv + i + 1;
  for (int k = 0; wargv[k]; k++)
    if (strcmp(wargv[k], "--dst") == 0 && wargv[k + 1])
      dst = wargv[k + 1];
    else if (strcmp(wargv[k], "--src") == 0 && wargv[k + 1])
      src = wargv[k + 1];
  if (dst == NULL || src == NULL)
    usage_fail("the worker command line has no --src or --dst");
  r.dir = ck_dirname(dst);
  base = ck_basename(dst);
  r.report = ck_temp_name(dst);
  r.script = ck_temp_name(dst);
  r.out = ck_temp_name(dst);
  ck_slurm_temp_tag(ck_temp_instance(), r.tag);
  if (!r.dir || !base || !r.report || !r.script || !r.out ||
      (script_text = ck_slurm_script(wargv, r.report, r.tag)) == NULL) {
    fail(-ENOMEM, "out of memory");
    goto out;
  }
  if ((i = write_new(r.report, "", 0600)) != 0 || (i = write_new(r.script, script_text, 0700)) != 0) {
    fail(i, "cannot write the job's files beside %s: %s", dst, strerror(-i));
    goto out;
  }
  name = ck_asprintf("ckptd:%.60s", base);
  q.job_name = name ? name : "ckptd";
  q.out_file = r.out;
  q.script = r.script;
  q.instance = r.tag;
  if (stop_sig || submit(&r, &q) != 0)
    goto out;
  say_msg(&(struct ck_wmsg){ .type = CK_WMSG_SLURM, .slurm_job = r.job });
  snprintf(id, sizeof(id), "%llu", (unsigned long long)r.job);
  for (int gone = 0, after_exit = 0;;) {
    if (stop_sig || (gone = source_gone(src))) {
      char out[OUT_MAX], err[OUT_MAX];
      char *sc[] = { "scancel", id, NULL };
      time_t deadline = time(NULL) + 120; /* the controller may be down: do not hold a slot for ever */
      run_cmd(sc, out, err, 60);
      while (time(NULL) < deadline) { /* until it is over: its worker removed its temporaries */
        read_report(&r);
        if (r.exit_status >= 0)
          break;
        query(&r);
        if (ck_slurm_final(r.state))
          break;
        sleep(1);
      }
      status = finish(&r, 1, gone);
      break;
    }
    read_report(&r);
    if (r.have_result && !r.result_stopped) {
      status = finish(&r, 0, 0); /* the worker's own word, written last: nothing to wait for */
      break;
    }
    query(&r);
    /* Stopped from outside, Slurm's final state tells why (NODE_FAIL, TIMEOUT, ...); a
     * controller that never says is not waited for beyond a minute after the script ended. */
    if (ck_slurm_final(r.state) || (r.exit_status >= 0 && ++after_exit * r.poll > 60)) {
      status = finish(&r, 0, 0);
      break;
    }
    nap(r.poll);
  }
out:
  cleanup(&r);
  free(r.report);
  free(r.script);
  free(r.out);
  free(r.dir);
  free(base);
  free(name);
  free(script_text);
  return status;
}
