/* The status file and Prometheus textfile: writer and reader (see status.h). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
  fprintf(f, "  \"started_at\": %.0f,\n  \"updated_at\": %.0f,\n  \"config\": ", st->started_at, st->updated_at);
  json_str(f, st->config);
  fprintf(f, ",\n  \"roots\": [");
  for (size_t i = 0; i < st->nroots; i++) {
    fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
    json_str(f, st->roots[i].name);
    fprintf(f, ", \"path\": ");
    json_str(f, st->roots[i].path);
    fprintf(f, ", \"direction\": \"%s\"}", st->roots[i].direction);
  }
  fprintf(f, "\n  ],\n  \"watched_directories\": %zu,\n  \"running\": %d,\n  \"queued\": %d,\n  \"waiting\": %d,\n",
          st->watched_directories, st->running, st->queued, st->waiting);
  fprintf(f, "  \"done\": %d,\n  \"failed\": %d,\n  \"done_since_start\": %llu,\n  \"failed_since_start\": %llu,\n"
             "  \"bytes_since_start\": %llu,\n  \"checks_since_start\": %llu,\n  \"running_jobs\": [",
          st->done, st->failed, st->done_since_start, st->failed_since_start, st->bytes_since_start,
          st->checks_since_start);
  for (size_t i = 0; i < st->njobs; i++) {
    fprintf(f, "%s\n    {\"source\": ", i ? "," : "");
    json_str(f, st->jobs[i].source);
    fprintf(f, ", \"direction\": \"%s\", \"seconds\": %.1f}", st->jobs[i].direction, st->jobs[i].seconds);
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

void ck_status_prometheus(FILE *f, const struct ck_status *st)
{
  fprintf(f, "# HELP ckptd_jobs_done_total Conversions completed since start.\n# TYPE ckptd_jobs_done_total counter\n"
             "ckptd_jobs_done_total %llu\n# HELP ckptd_jobs_failed_total Conversions failed since start.\n"
             "# TYPE ckptd_jobs_failed_total counter\nckptd_jobs_failed_total %llu\n"
             "# HELP ckptd_bytes_total Tensor bytes converted since start.\n# TYPE ckptd_bytes_total counter\n"
             "ckptd_bytes_total %llu\n# HELP ckptd_jobs_running Conversions running.\n# TYPE ckptd_jobs_running gauge\n"
             "ckptd_jobs_running %d\n# HELP ckptd_watched_directories Directories watched with inotify.\n"
             "# TYPE ckptd_watched_directories gauge\nckptd_watched_directories %zu\n",
          st->done_since_start, st->failed_since_start, st->bytes_since_start, st->running, st->watched_directories);
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

void ck_status_print(char *text, FILE *out)
{
  char v[4][512], *line, *save = NULL;
  long pid = atol(V(text, "pid", 0));
  int section = 0;

  fprintf(out, "ckptd %s, pid %ld (%s), state %s\n", V(text, "version", 1), pid,
          pid > 0 && kill((pid_t)pid, 0) == 0 ? "alive" : "not running", V(text, "state", 2));
  fprintf(out, "config: %s\n", V(text, "config", 0));
  fprintf(out, "watched directories: %s\n", V(text, "watched_directories", 0));
  fprintf(out, "running %s, queued %s, waiting %s; ", V(text, "running", 0), V(text, "queued", 1),
          V(text, "waiting", 2));
  fprintf(out, "in the record: done %s, failed %s\n", V(text, "done", 0), V(text, "failed", 1));
  for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (strstr(line, "\"roots\": ["))
      section = 1, fprintf(out, "trees:\n");
    else if (strstr(line, "\"running_jobs\": ["))
      section = 2, fprintf(out, "running:\n");
    else if (strstr(line, "\"recent\": ["))
      section = 3, fprintf(out, "recent:\n");
    else if (strchr(line, ']'))
      section = 0;
    else if (section == 1 && find(line, "path", v[0], sizeof(v[0])))
      fprintf(out, "  [watch %s] %s (%s)\n", V(line, "name", 1), v[0], V(line, "direction", 2));
    else if (section == 2 && find(line, "source", v[0], sizeof(v[0])))
      fprintf(out, "  %s (%s, %s s)\n", v[0], V(line, "direction", 1), V(line, "seconds", 2));
    else if (section == 3 && find(line, "source", v[0], sizeof(v[0]))) {
      int ok = find(line, "ok", v[1], sizeof(v[1])) && strcmp(v[1], "true") == 0;
      fprintf(out, "  %-6s %s, %s bytes in %s s", ok ? "ok" : "FAILED", v[0], V(line, "bytes", 2), V(line, "seconds", 3));
      fprintf(out, "%s%s\n", ok ? "" : ": ", ok ? "" : (find(line, "error", v[1], sizeof(v[1])) ? v[1] : ""));
    }
  }
}
