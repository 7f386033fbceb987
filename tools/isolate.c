/* A worker process for the one-shot tools.
 *
 * DESIGN: libhdf5 trusts its files more than it should; a few corrupt files make it
 * dereference garbage (SIGSEGV inside H5A__close, H5Literate, H5O_msg_reset), and no
 * check of ours can come first. So every tool forks before any thread or HDF5 call
 * and lets the child do all the format work. The parent blocks SIGINT, SIGTERM,
 * SIGHUP and SIGCHLD and waits for them with sigwaitinfo: no handler, no async
 * state. When the child ends, the parent looks at how (waitid with WNOWAIT, so the
 * pid cannot be reused meanwhile), removes the temporaries the child left (their
 * names carry the child's pid: ck_temp_name), and only then reaps it. On a
 * terminating signal it kills the child first (SIGTERM, SIGKILL after 2 s). stdout
 * and stderr are shared, so listings stream straight from the child. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "isolate.h"

#define STOP_GRACE_MS 2000

static const char *signame(int sig, char *buf, size_t len)
{
  static const struct {
    int sig;
    const char *name;
  } names[] = { { SIGSEGV, "SIGSEGV" }, { SIGBUS, "SIGBUS" }, { SIGILL, "SIGILL" }, { SIGFPE, "SIGFPE" },
                { SIGABRT, "SIGABRT" }, { SIGSYS, "SIGSYS" }, { SIGTRAP, "SIGTRAP" }, { SIGKILL, "SIGKILL" },
                { SIGXCPU, "SIGXCPU" }, { SIGXFSZ, "SIGXFSZ" } };

  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (names[i].sig == sig)
      return names[i].name;
  snprintf(buf, len, "signal %d", sig);
  return buf;
}

static int is_crash(int sig)
{
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGABRT || sig == SIGSYS ||
         sig == SIGTRAP;
}

/* Signals that end a process on a user's or the system's request, not a fault. */
static int is_request(int sig)
{
  return sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGPIPE;
}

/* 1 once the child has ended (left unreaped), 0 while it runs; block waits for it. */
static int child_ended(pid_t pid, siginfo_t *si, int block)
{
  memset(si, 0, sizeof(*si));
  while (waitid(P_PID, (id_t)pid, si, WEXITED | WNOWAIT | (block ? 0 : WNOHANG)) != 0)
    if (errno != EINTR)
      return 1; /* ECHILD: nothing left to wait for */
  return si->si_pid == pid;
}

static void stop_child(pid_t pid, siginfo_t *si)
{
  sigset_t chld;
  struct timespec tick = { 0, 50 * 1000 * 1000 };

  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  kill(pid, SIGTERM);
  for (int waited = 0; waited < STOP_GRACE_MS; waited += 50) {
    if (child_ended(pid, si, 0))
      return;
    sigtimedwait(&chld, NULL, &tick);
  }
  kill(pid, SIGKILL);
  child_ended(pid, si, 1);
}

/* Block the signals we wait for; those a caller left ignored (nohup) stay ignored. */
static void wait_set(sigset_t *set)
{
  static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
  struct sigaction sa;

  sigemptyset(set);
  sigaddset(set, SIGCHLD);
  for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
    if (sigaction(sigs[i], NULL, &sa) == 0 && sa.sa_handler != SIG_IGN)
      sigaddset(set, sigs[i]);
}

static int outcome(const siginfo_t *si, int stopped_by, const char *what)
{
  char buf[32];
  int sig = si->si_status;

  if (stopped_by)
    return 128 + stopped_by;
  if (si->si_pid == 0) { /* someone else reaped it: we cannot tell how it ended */
    fprintf(stderr, "%s: %s: lost track of the worker process\n", program_invocation_short_name, what);
    return 1;
  }
  if (si->si_code == CLD_EXITED)
    return si->si_status;
  if (is_request(sig))
    return 128 + sig;
  if (is_crash(sig))
    fprintf(stderr, "%s: %s: corrupt HDF5 file: libhdf5 crashed reading it (%s)\n", program_invocation_short_name,
            what, signame(sig, buf, sizeof(buf)));
  else
    fprintf(stderr, "%s: %s: the worker process was killed by %s\n", program_invocation_short_name, what,
            signame(sig, buf, sizeof(buf)));
  return 1;
}

int ck_isolate_run(int (*fn)(void *), void *arg, const char *what, const char *const *cleanup_dirs)
{
  const char *env = getenv(CK_ISOLATE_ENV);
  struct sigaction dfl = { .sa_handler = SIG_DFL }, old_chld;
  sigset_t set, old_mask;
  siginfo_t si;
  pid_t pid;
  int stopped_by = 0, rc;

  if (env && env[0] && strcmp(env, "0") != 0)
    return fn(arg);
  fflush(NULL); /* nothing buffered may be written twice */
  sigaction(SIGCHLD, &dfl, &old_chld); /* an inherited SIG_IGN would reap the child for us */
  wait_set(&set);
  sigprocmask(SIG_BLOCK, &set, &old_mask);
  if ((pid = fork()) < 0) {
    fprintf(stderr, "%s: fork: %s\n", program_invocation_short_name, strerror(errno));
    rc = 1;
    goto out;
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    exit(fn(arg)); /* exit, not _exit: stdio is flushed and atexit handlers (HDF5's) run */
  }
  while (!child_ended(pid, &si, 0)) {
    int sig = sigwaitinfo(&set, NULL);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
      stop_child(pid, &si);
      stopped_by = sig;
      break;
    }
  }
  for (size_t i = 0; cleanup_dirs && cleanup_dirs[i]; i++)
    ck_temp_remove_pid(cleanup_dirs[i], ck_temp_instance(), (long)pid);
  rc = outcome(&si, stopped_by, what);
  waitpid(pid, NULL, 0);
out:
  if (stopped_by == 0) { /* an interrupted tool exits at once; keep the signal blocked till then */
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGCHLD, &old_chld, NULL);
  }
  return rc;
}
