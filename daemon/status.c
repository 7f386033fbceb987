/* The status file and Prometheus textfile: writer and reader (see status.h). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decide.h"
#include "fileio.h"
#include "status.h"

static void json_str(FILE *f, const char *s)
{
  fputc('"', f);
  for (; s && *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

void ck_status_json(FILE *f, const struct ck_status *st)
{
  fprintf(f, "{\n  \"daemon\": \"ckptd\",\n  \"version\": \"%s\",\n  \"pid\": %ld,\n  \"state\": \"%s\",\n", st->version,
          st->pid, st->state);
  fprintf(f, "  \"started_at\": %.3f,\n  \"updated_at\": %.3f,\n  \"config\": ", st->started_at, st->updated_at);
  json_str(f, st->config);
  fprintf(f, ",\n  \"roots\": [");
  for (size_t i = 0; i < st->nroots; i++) {
    fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
    json_str(f, st->roots[i].name);
    fprintf(f, ", \"path\": ");
    json_str(f, st->roots[i].path);
    fprintf(f, ", \"direction\": \"%s\", \"last_success\": %.0f, \"free_bytes\": %lld, \"size_bytes\": %lld}",
            st->roots[i].direction, st->roots[i].last_success, st->roots[i].free_bytes, st->roots[i].size_bytes);
  }
  fprintf(f, "\n  ],\n  \"watched_directories\": %zu,\n  \"running\": %d,\n  \"queued\": %d,\n  \"waiting\": %d,\n"
             "  \"blocked\": %d,\n",
          st->watched_directories, st->running, st->queued, st->waiting, st->blocked);
  fprintf(f, "  \"done\": %d,\n  \"failed\": %d,\n  \"done_since_start\": %llu,\n  \"failed_since_start\": %llu,\n"
             "  \"bytes_since_start\": %llu,\n  \"checks_since_start\": %llu,\n  \"running_jobs\": [",
          st->done, st->failed, st->done_since_start, st->failed_since_start, st->bytes_since_start,
          st->checks_since_start);
  for (size_t i = 0; i < st->njobs; i++) {
    fprintf(f, "%s\n    {\"source\": ", i ? "," : "");
    json_str(f, st->jobs[i].source);
    fprintf(f, ", \"direction\": \"%s\", \"pid\": %ld, \"started_at\": %.0f, \"seconds\": %.1f, \"bytes_done\": %llu, "
               "\"bytes_total\": %llu, \"rate\": %.0f, \"eta\": %.0f",
            st->jobs[i].direction, st->jobs[i].pid, st->jobs[i].started_at, st->jobs[i].seconds, st->jobs[i].done,
            st->jobs[i].total, ck_status_rate(&st->jobs[i]), ck_status_eta(&st->jobs[i]));
    if (st->jobs[i].slurm_job)
      fprintf(f, ", \"slurm_job\": %llu", st->jobs[i].slurm_job);
    fputc('}', f);
  }
  fprintf(f, "\n  ],\n  \"recent\": [");
  for (size_t i = 0; i < st->nrecent; i++) {
    fprintf(f, "%s\n    {\"source\": ", i ? "," : "");
    json_str(f, st->recent[i].source);
    fprintf(f, ", \"ok\": %s, \"bytes\": %llu, \"seconds\": %.2f, \"error\": ", st->recent[i].ok ? "true" : "false",
            st->recent[i].bytes, st->recent[i].seconds);
    json_str(f, st->recent[i].error ? st->recent[i].error : "");
    fputc('}', f);
  }
  fprintf(f, "\n  ]\n}\n");
}

int ck_metrics_dir(int from, int to)
{
  return ck_decide_dir_name(from, to) ? from * CK_KINDS + to : 0;
}

void ck_metrics_observe(struct ck_metrics *m, int d, double seconds)
{
  static const double le[CK_DURATION_BUCKETS - 1] = { 1, 5, 15, 60, 300, 900, 3600, 14400 };

  if (d <= 0 || d >= CK_METRIC_DIRS)
    return;
  for (int i = 0; i < CK_DURATION_BUCKETS; i++)
    if (i == CK_DURATION_BUCKETS - 1 || seconds <= le[i])
      m->duration_le[d][i]++;
  m->duration_sum[d] += seconds;
}

/* A direction's series are written when it is saver-to-h5 or h5-to-saver (always there,
 * as before four formats) or has had a job since start. */
static const char *metric_dir(const struct ck_metrics *m, int d)
{
  const char *name = ck_decide_dir_name(d / CK_KINDS, d % CK_KINDS);
  unsigned long long any = 0;

  if (name == NULL)
    return NULL;
  for (int o = 0; o < CK_OUTCOMES; o++)
    any += m->jobs[d][o];
  return any || !strcmp(name, "saver-to-h5") || !strcmp(name, "h5-to-saver") ? name : NULL;
}

double ck_status_rate(const struct ck_status_job *j)
{
  return j->seconds > 0 ? (double)j->done / j->seconds : 0;
}

double ck_status_eta(const struct ck_status_job *j)
{
  double rate = ck_status_rate(j);

  return rate > 0 && j->total >= j->done ? (double)(j->total - j->done) / rate : -1;
}

/* A label value as the text format wants it: \\, \" and \n escaped. */
static void label(FILE *f, const char *s)
{
  fputc('"', f);
  for (; s && *s; s++) {
    if (*s == '\\' || *s == '"')
      fprintf(f, "\\%c", *s);
    else if (*s == '\n')
      fputs("\\n", f);
    else
      fputc(*s, f);
  }
  fputc('"', f);
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static double last_success(const struct ck_status_root *r) { return r->last_success; }
static double free_bytes(const struct ck_status_root *r) { return (double)r->free_bytes; }
static double size_bytes(const struct ck_status_root *r) { return (double)r->size_bytes; }
static double disk_guard(const struct ck_status_root *r) { return (double)r->disk_guard; }

static void gauge(FILE *f, const char *name, const char *help, double v)
{
  head(f, name, "gauge", help);
  fprintf(f, "%s %.0f\n", name, v);
}

/* One series per tree, labelled tree="NAME"; a negative value (unknown) is left out. */
static void per_tree(FILE *f, const struct ck_status *st, const char *name, const char *type, const char *help,
                     double (*value)(const struct ck_status_root *r))
{
  head(f, name, type, help);
  for (size_t i = 0; i < st->nroots; i++) {
    double v = value(&st->roots[i]);
    if (v < 0)
      continue;
    fprintf(f, "%s{tree=", name);
    label(f, st->roots[i].name);
    fprintf(f, "} %.0f\n", v);
  }
}

void ck_status_prometheus(FILE *f, const struct ck_status *st)
{
  static const char *outcomes[CK_OUTCOMES] = { "done", "failed", "blocked", "retry", "aborted" };
  static const char *le[CK_DURATION_BUCKETS] = { "1", "5", "15", "60", "300", "900", "3600", "14400", "+Inf" };
  const struct ck_metrics *m = st->metrics;

  gauge(f, "ckptd_start_time_seconds", "When ckptd started (Unix time).", st->started_at);
  gauge(f, "ckptd_jobs_running", "Conversions running.", st->running);
  gauge(f, "ckptd_queue_length", "Conversions queued for a worker.", st->queued);
  gauge(f, "ckptd_sources_waiting", "Sources not complete yet, settling, or waiting for a retry.", st->waiting);
  gauge(f, "ckptd_sources_blocked", "Sources blocked by a permanent cause (permissions, read-only, unsupported).",
        st->blocked);
  gauge(f, "ckptd_watched_directories", "Directories watched with inotify.", (double)st->watched_directories);
  if (m) {
    head(f, "ckptd_jobs_total", "counter", "Conversions ended since start, by direction and outcome.");
    for (int d = 0; d < CK_METRIC_DIRS; d++)
      for (int o = 0; o < CK_OUTCOMES && metric_dir(m, d); o++)
        fprintf(f, "ckptd_jobs_total{direction=\"%s\",outcome=\"%s\"} %llu\n", metric_dir(m, d), outcomes[o],
                m->jobs[d][o]);
    head(f, "ckptd_converted_bytes_total", "counter", "Tensor bytes converted since start, by direction.");
    for (int d = 0; d < CK_METRIC_DIRS; d++)
      if (metric_dir(m, d))
        fprintf(f, "ckptd_converted_bytes_total{direction=\"%s\"} %llu\n", metric_dir(m, d), m->bytes[d]);
    head(f, "ckptd_job_duration_seconds", "histogram", "Duration of successful conversions.");
    for (int d = 0; d < CK_METRIC_DIRS; d++) {
      const char *name = metric_dir(m, d);
      if (name == NULL)
        continue;
      for (int i = 0; i < CK_DURATION_BUCKETS; i++)
        fprintf(f, "ckptd_job_duration_seconds_bucket{direction=\"%s\",le=\"%s\"} %llu\n", name, le[i],
                m->duration_le[d][i]);
      fprintf(f, "ckptd_job_duration_seconds_sum{direction=\"%s\"} %.3f\n", name, m->duration_sum[d]);
      fprintf(f, "ckptd_job_duration_seconds_count{direction=\"%s\"} %llu\n", name,
              m->duration_le[d][CK_DURATION_BUCKETS - 1]);
    }
    head(f, "ckptd_failures_total", "counter", "Failed, blocked or retried jobs since start, by reason.");
    for (int r = 0; r < m->nreasons && r < CK_MAX_REASONS; r++)
      fprintf(f, "ckptd_failures_total{reason=\"%s\"} %llu\n", m->reason_names[r], m->failures[r]);
    head(f, "ckptd_rescans_total", "counter", "Periodic rescans of the trees since start.");
    fprintf(f, "ckptd_rescans_total %llu\n", m->rescans);
    head(f, "ckptd_rescan_duration_seconds", "gauge", "Duration of the last rescan.");
    fprintf(f, "ckptd_rescan_duration_seconds %.6f\n", m->rescan_seconds);
  }
  per_tree(f, st, "ckptd_last_success_timestamp_seconds", "gauge",
           "Last successful conversion in a tree (Unix time; 0: none since start).", last_success);
  per_tree(f, st, "ckptd_filesystem_free_bytes", "gauge", "Bytes available to ckptd on a tree's file system.",
           free_bytes);
  per_tree(f, st, "ckptd_filesystem_size_bytes", "gauge", "Size of a tree's file system.", size_bytes);
  per_tree(f, st, "ckptd_disk_guard_total", "counter",
           "Jobs deferred or stopped because free space was under min_free.", disk_guard);
}

int ck_status_save(const char *path, void (*fn)(FILE *f, const struct ck_status *st), const struct ck_status *st)
{
  char *tmp = ck_temp_name(path);
  int fd = tmp ? ck_create_excl(tmp) : -ENOMEM, rc = 0;
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

  if (f == NULL) {
    rc = fd < 0 ? fd : -errno;
    if (fd >= 0)
      close(fd);
    goto out;
  }
  fn(f, st);
  if (fflush(f) != 0)
    rc = -errno;
  fclose(f);
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno;
out:
  if (rc != 0 && tmp)
    unlink(tmp);
  free(tmp);
  return rc;
}

/* The value of "key" in a line of the status file, into out. */
static const char *find(const char *line, const char *key, char *out, size_t len)
{
  char pat[64];
  const char *p;
  size_t n = 0;

  snprintf(pat, sizeof(pat), "\"%s\": ", key);
  if ((p = strstr(line, pat)) == NULL)
    return NULL;
  p += strlen(pat);
  if (*p == '"') {
    for (p++; *p && *p != '"' && n + 1 < len; p++) {
      if (*p == '\\' && p[1])
        p++;
      out[n++] = *p;
    }
  } else {
    while (*p && *p != ',' && *p != '}' && *p != '\n' && n + 1 < len)
      out[n++] = *p++;
  }
  out[n] = 0;
  return out;
}

#define V(text, key, i) (find(text, key, v[i], sizeof(v[i])) ? v[i] : "?")

static const char *human(double bytes, char *buf, size_t len)
{
  static const char *unit[] = { "B", "kB", "MB", "GB", "TB", "PB" };
  int u = 0;

  while (bytes >= 1000 && u < 5) {
    bytes /= 1000;
    u++;
  }
  snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
  return buf;
}

/* One running job: a row of the table, and a bar under it on a terminal. */
static void print_job(const char *line, FILE *out, int tty)
{
  char v[8][512], a[32], b[32], r[32];
  struct ck_status_job j = { 0 };
  double eta, frac;

  if (!find(line, "source", v[0], sizeof(v[0])))
    return;
  j.done = strtoull(V(line, "bytes_done", 1), NULL, 10);
  j.total = strtoull(V(line, "bytes_total", 2), NULL, 10);
  j.seconds = atof(V(line, "seconds", 3));
  eta = ck_status_eta(&j);
  frac = j.total ? (double)j.done / (double)j.total : 0;
  fprintf(out, "  %-11s %7s %5.0f%% %10s / %-10s %11s/s %7s %8.0f s  %s\n", V(line, "direction", 4), V(line, "pid", 5),
          frac * 100, human((double)j.done, a, sizeof(a)), human((double)j.total, b, sizeof(b)),
          human(ck_status_rate(&j), r, sizeof(r)), eta < 0 ? "?" : (snprintf(v[6], sizeof(v[6]), "%.0f s", eta), v[6]),
          j.seconds, v[0]);
  if (tty) {
    int width = 50, fill = (int)(frac * width + 0.5);
    fputs("              [", out);
    for (int i = 0; i < width; i++)
      fputc(i < fill ? '#' : '.', out);
    fputs("]\n", out);
  }
}

void ck_status_print(char *text, FILE *out, int tty)
{
  char v[4][512], *line, *save = NULL;
  long pid = atol(V(text, "pid", 0));
  int section = 0;

  fprintf(out, "ckptd %s, pid %ld (%s), state %s\n", V(text, "version", 1), pid,
          pid > 0 && kill((pid_t)pid, 0) == 0 ? "alive" : "not running", V(text, "state", 2));
  fprintf(out, "config: %s\n", V(text, "config", 0));
  fprintf(out, "watched directories: %s\n", V(text, "watched_directories", 0));
  fprintf(out, "running %s, queued %s, waiting %s, blocked %s; ", V(text, "running", 0), V(text, "queued", 1),
          V(text, "waiting", 2), V(text, "blocked", 3));
  fprintf(out, "in the record: done %s, failed %s\n", V(text, "done", 0), V(text, "failed", 1));
  for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (strstr(line, "\"roots\": ["))
      section = 1, fprintf(out, "trees:\n");
    else if (strstr(line, "\"running_jobs\": ["))
      section = 2, fprintf(out, "running:\n  %-11s %7s %6s %23s %13s %7s %10s  %s\n", "DIRECTION", "PID", "DONE",
                           "BYTES", "RATE", "ETA", "ELAPSED", "SOURCE");
    else if (strstr(line, "\"recent\": ["))
      section = 3, fprintf(out, "recent:\n");
    else if (strchr(line, ']'))
      section = 0;
    else if (section == 1 && find(line, "path", v[0], sizeof(v[0]))) {
      long long free_bytes = atoll(V(line, "free_bytes", 3));
      char fb[32];
      fprintf(out, "  [watch %s] %s (%s", V(line, "name", 1), v[0], V(line, "direction", 2));
      fprintf(out, free_bytes >= 0 ? "; %s free)\n" : ")\n", human((double)free_bytes, fb, sizeof(fb)));
    } else if (section == 2)
      print_job(line, out, tty);
    else if (section == 3 && find(line, "source", v[0], sizeof(v[0]))) {
      int ok = find(line, "ok", v[1], sizeof(v[1])) && strcmp(v[1], "true") == 0;
      fprintf(out, "  %-6s %s, %s bytes in %s s", ok ? "ok" : "FAILED", v[0], V(line, "bytes", 2), V(line, "seconds", 3));
      fprintf(out, "%s%s\n", ok ? "" : ": ", ok ? "" : (find(line, "error", v[1], sizeof(v[1])) ? v[1] : ""));
    }
  }
}
