/* ckptd: watches model_dir trees and converts every new, complete checkpoint once.
 * main() wires the modules in order (configuration, logging, scheduler, signals,
 * systemd notification) and tears them down in reverse. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "conf.h"
#include "h5.h"
#include "log.h"
#include "sched.h"
#include "worker.h"

struct daemon {
  uv_loop_t *loop;
  const char *config_path;
  struct ck_sched *sched;
  uv_signal_t sighup, sigterm, sigint;
  uv_timer_t watchdog, notify_timer;
  int stopping;
};

static void notify(const char *state)
{
#ifdef HAVE_SYSTEMD
  sd_notify(0, state);
#else
  (void)state;
#endif
}

static void notify_status(struct daemon *d)
{
  char line[300], msg[340];

  ck_sched_status_line(d->sched, line, sizeof(line));
  snprintf(msg, sizeof(msg), "STATUS=%s", line);
  notify(msg);
}

static void usage(FILE *f)
{
  fprintf(f,
          "usage: ckptd [--config FILE] [--check-config] [--version] [--help]\n"
          "\n"
          "Watch model_dir trees and convert every new, complete checkpoint between TensorFlow\n"
          "Saver and HDF5 formats once. Runs in the foreground (systemd starts it).\n"
          "\n"
          "  -c, --config FILE   configuration (default: the built-in one, which watches\n"
          "                      ./var/model_dir in both directions, state in ./var/state)\n"
          "  -n, --check-config  parse the configuration, print it, and exit (0 ok, 2 bad)\n"
          "  -V, --version       print the version\n"
          "  -h, --help          this text\n"
          "\n"
          "Signals: SIGHUP reloads the configuration (a bad one is refused and the running\n"
          "one kept); SIGTERM stops intake, lets running conversions finish within\n"
          "stop_timeout, aborts the rest cleanly and exits 0. See conf/ckptd.ini.\n");
}

static int load(const char *path, struct ck_conf *c, char *msg, size_t len)
{
  return path ? ck_conf_load(path, c, msg, len) : ck_conf_default(c, msg, len);
}

static void on_hup(uv_signal_t *h, int sig)
{
  struct daemon *d = h->data;
  struct ck_conf *c = calloc(1, sizeof(*c));
  char msg[600], mono[64];
  struct timespec ts;

  (void)sig;
  if (d->stopping || c == NULL)
    return free(c);
  clock_gettime(CLOCK_MONOTONIC, &ts);
  snprintf(mono, sizeof(mono), "RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
  notify(mono);
  if (load(d->config_path, c, msg, sizeof(msg)) != 0) {
    struct ck_log_fields f = { d->config_path, NULL, -1, -1, NULL, msg };
    ck_log(CK_LOG_ERROR, "reload_failed", &f, "configuration not reloaded, the running one is kept: %s", msg);
    free(c);
  } else {
    ck_log(CK_LOG_INFO, "reload", CK_LOG_NO_FIELDS, "configuration reloaded from %s", c->source);
    ck_sched_reload(d->sched, c);
  }
  notify("READY=1");
  notify_status(d);
}

static void stopped(void *ctx)
{
  struct daemon *d = ctx;

  ck_log(CK_LOG_INFO, "stop", CK_LOG_NO_FIELDS, "stopped");
  uv_close((uv_handle_t *)&d->sighup, NULL);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->watchdog, NULL);
  uv_close((uv_handle_t *)&d->notify_timer, NULL);
  ck_sched_close_handles(d->sched);
}

static void on_term(uv_signal_t *h, int sig)
{
  struct daemon *d = h->data;

  if (d->stopping)
    return;
  d->stopping = 1;
  notify("STOPPING=1");
  ck_log(CK_LOG_INFO, "stop", CK_LOG_NO_FIELDS, "%s: stopping intake, letting running conversions finish",
         sig == SIGTERM ? "SIGTERM" : "SIGINT");
  ck_sched_shutdown(d->sched, stopped, d);
}

static void on_watchdog(uv_timer_t *t)
{
  (void)t;
  notify("WATCHDOG=1");
}

static void on_notify(uv_timer_t *t)
{
  notify_status(t->data);
}

int main(int argc, char **argv)
{
  static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
                                        { "check-config", no_argument, NULL, 'n' },
                                        { "version", no_argument, NULL, 'V' },
                                        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
  struct daemon d = { 0 };
  struct ck_conf *conf = calloc(1, sizeof(*conf));
  int check_only = 0, o, rc;
  char msg[600];
  uint64_t wd_usec = 0;

  if (argc > 1 && strcmp(argv[1], "--worker") == 0) { /* a job's child process */
    free(conf);
    return ck_worker_main(argc - 2, argv + 2);
  }
  while ((o = getopt_long(argc, argv, "c:nVh", opts, NULL)) != -1) {
    switch (o) {
    case 'c': d.config_path = optarg; break;
    case 'n': check_only = 1; break;
    case 'V': printf("ckptd %s\n", PACKAGE_VERSION); free(conf); return 0;
    case 'h': usage(stdout); free(conf); return 0;
    default: usage(stderr); free(conf); return 2;
    }
  }
  if (optind != argc) {
    usage(stderr);
    free(conf);
    return 2;
  }
  if (load(d.config_path, conf, msg, sizeof(msg)) != 0) {
    fprintf(stderr, "ckptd: %s\n", msg);
    free(conf);
    return 2;
  }
  if (check_only) {
    ck_conf_print(conf);
    ck_conf_free(conf);
    free(conf);
    return 0;
  }
  ck_log_init(conf->log_level);
  ck_h5_init();
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN); /* a file size limit is a failed job, not a dead daemon */
  d.loop = uv_default_loop();
  ck_log(CK_LOG_INFO, "start", CK_LOG_NO_FIELDS, "ckptd %s starting with %s (%d workers, %d tree(s))",
         PACKAGE_VERSION, conf->source, conf->workers, conf->nwatches);
  if ((rc = ck_sched_start(d.loop, conf, &d.sched, msg, sizeof(msg))) != 0) {
    ck_log(CK_LOG_ERROR, "error", CK_LOG_NO_FIELDS, "cannot start: %s", msg);
    ck_conf_free(conf);
    free(conf);
    return rc == -EBUSY ? 2 : 1;
  }
  uv_signal_init(d.loop, &d.sighup);
  uv_signal_init(d.loop, &d.sigterm);
  uv_signal_init(d.loop, &d.sigint);
  d.sighup.data = d.sigterm.data = d.sigint.data = &d;
  uv_signal_start(&d.sighup, on_hup, SIGHUP);
  uv_signal_start(&d.sigterm, on_term, SIGTERM);
  uv_signal_start(&d.sigint, on_term, SIGINT);
  uv_timer_init(d.loop, &d.watchdog);
  uv_timer_init(d.loop, &d.notify_timer);
  d.notify_timer.data = &d;
#ifdef HAVE_SYSTEMD
  if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0)
    uv_timer_start(&d.watchdog, on_watchdog, wd_usec / 2000, wd_usec / 2000);
#endif
  (void)wd_usec;
  uv_timer_start(&d.notify_timer, on_notify, 2000, 2000);
  notify("READY=1");
  notify_status(&d);
  uv_run(d.loop, UV_RUN_DEFAULT);
  ck_sched_free(d.sched);
  uv_loop_close(d.loop);
  return 0;
}
