/* Configuration parsing. inih calls handler() per key; a handler failure makes
 * ini_parse return that line, and the first message is kept. Values are checked
 * completely here, so the rest of the daemon never sees a bad one. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckptfile.h"
#include "conf.h"
#include "fileio.h"
#include "h5.h"
#include "util.h"

struct parse {
  struct ck_conf *c;
  char err[512];
  int have_err;
  int in_watch; /* index+1 of the current [watch] section, 0 in [ckptd], -1 elsewhere, -2 in [slurm] */
  char section[256]; /* inih reports the section with each key: notice when it changes */
};

/* Keep the first message; returns 0, inih's "stop, this line is bad". */
__attribute__((format(printf, 2, 3)))
static int failf(struct parse *p, const char *fmt, ...)
{
  va_list ap;

  if (!p->have_err) {
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof(p->err), fmt, ap);
    va_end(ap);
    p->have_err = 1;
  }
  return 0;
}

static int parse_bool(const char *v, int *out)
{
  if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
    *out = 1;
  else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
    *out = 0;
  else
    return -1;
  return 0;
}


static int parse_seconds(const char *s, double *out)
{
  char *end;
  double v = strtod(s, &end);

  if (end == s || *end || v < 0 || v > 86400 * 7)
    return -1;
  *out = v;
  return 0;
}

static int parse_globs(char *list, char **out, int *n)
{
  char *save = NULL;

  for (char *t = strtok_r(list, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
    if (*n == CK_MAX_GLOBS)
      return -1;
    out[(*n)++] = strdup(t);
  }
  return 0;
}

static int main_key(struct parse *p, const char *name, const char *value)
{
  struct ck_conf *c = p->c;

  if (!strcmp(name, "workers")) {
    char *end;
    long v = strtol(value, &end, 10);
    if (*end || v < 1 || v > 64)
      return failf(p, "workers: '%s' is not a number from 1 to 64", value);
    c->workers = (int)v;
  } else if (!strcmp(name, "memory_budget")) {
    if (ck_parse_size(value, &c->memory_budget) != 0 || c->memory_budget < (1u << 20))
      return failf(p, "memory_budget: '%s' is not a size of at least 1M", value);
  } else if (!strcmp(name, "state_dir")) {
    free(c->state_dir);
    c->state_dir = strdup(value);
  } else if (!strcmp(name, "status_file")) {
    free(c->status_file);
    c->status_file = strdup(value);
  } else if (!strcmp(name, "prometheus_file")) {
    free(c->prometheus_file);
    c->prometheus_file = strdup(value);
  } else if (!strcmp(name, "control_socket") || !strcmp(name, "control_group")) {
    char **dst = name[8] == 's' ? &c->control_socket : &c->control_group;
    if (value[0] == '\0' || (name[8] == 's' && strlen(value) >= 108))
      return failf(p, "%s: '%s' is empty or longer than a Unix socket path can be", name, value);
    free(*dst);
    *dst = strdup(value);
  } else if (!strcmp(name, "log_level")) {
    static const char *levels[] = { "error", "warn", "info", "debug" };
    int found = -1;
    for (int i = 0; i < 4; i++)
      if (!strcmp(value, levels[i]))
        found = i;
    if (found < 0)
      return failf(p, "log_level: '%s' is not error, warn, info or debug", value);
    c->log_level = found;
  } else if (!strcmp(name, "settle_seconds")) {
    if (parse_seconds(value, &c->settle_seconds) != 0)
      return failf(p, "settle_seconds: '%s' is not a number of seconds", value);
  } else if (!strcmp(name, "rescan_seconds")) {
    if (parse_seconds(value, &c->rescan_seconds) != 0 || c->rescan_seconds < 1)
      return failf(p, "rescan_seconds: '%s' is not a number of seconds (at least 1)", value);
  } else if (!strcmp(name, "stop_timeout")) {
    if (parse_seconds(value, &c->stop_timeout) != 0)
      return failf(p, "stop_timeout: '%s' is not a number of seconds", value);
  } else if (!strcmp(name, "worker_memory_limit")) {
    if (ck_parse_size(value, &c->worker_memory_limit) != 0 ||
        (c->worker_memory_limit != 0 && c->worker_memory_limit < (64u << 20)))
      return failf(p, "worker_memory_limit: '%s' is not 0 or a size of at least 64M", value);
  } else if (!strcmp(name, "executor")) {
    if (strcmp(value, "local") != 0 && strcmp(value, "slurm") != 0)
      return failf(p, "executor: '%s' is not local or slurm", value);
    c->executor = !strcmp(value, "slurm") ? CK_EXEC_SLURM : CK_EXEC_LOCAL;
  } else if (!strcmp(name, "claims_dir") || !strcmp(name, "instance")) {
    char **dst = name[0] == 'c' ? &c->claims_dir : &c->instance;
    if (value[0] == '\0' || strlen(value) > 1024 || strchr(value, '\n'))
      return failf(p, "%s: '%s' is empty or too long", name, value);
    if (name[0] == 'c' && value[0] != '/')
      return failf(p, "claims_dir: '%s' is not an absolute path (every instance must name the same directory)",
                   value);
    free(*dst);
    *dst = strdup(value);
  } else if (!strcmp(name, "lease_seconds")) {
    if (parse_seconds(value, &c->lease_seconds) != 0 || c->lease_seconds < 3)
      return failf(p, "lease_seconds: '%s' is not a number of seconds (at least 3)", value);
  } else if (!strcmp(name, "worker_cpu_limit")) {
    double v;
    if (parse_seconds(value, &v) != 0 || (v != 0 && v < 1))
      return failf(p, "worker_cpu_limit: '%s' is not 0 or a number of seconds (at least 1)", value);
    c->worker_cpu_limit = (uint64_t)v;
  } else {
    return failf(p, "unknown key '%s' in [ckptd]", name);
  }
  return 1;
}

/* Add from -> to to a tree's directions: at most one target per source format. */
static int add_direction(struct parse *p, struct ck_watch_conf *w, int from, int to)
{
  if (w->target[from] != 0 && w->target[from] != to) {
    failf(p, "direction: %s and %s: at most one target per source format", ck_decide_dir_name(from, w->target[from]),
          ck_decide_dir_name(from, to));
    return -1;
  }
  w->target[from] = to;
  return 0;
}

/* Its words for humans: "both" for saver-to-h5 and h5-to-saver alone, else the list. */
static void name_directions(struct ck_watch_conf *w)
{
  size_t n = 0;

  w->direction[0] = '\0';
  if (w->target[CK_KIND_SAVER] == CK_KIND_H5 && w->target[CK_KIND_H5] == CK_KIND_SAVER &&
      !w->target[CK_KIND_TORCH] && !w->target[CK_KIND_SAFETENSORS]) {
    snprintf(w->direction, sizeof(w->direction), "both");
    return;
  }
  for (int k = CK_KIND_SAVER; k < CK_KINDS; k++)
    if (w->target[k] && n < sizeof(w->direction))
      n += (size_t)snprintf(w->direction + n, sizeof(w->direction) - n, "%s%s", n ? "," : "",
                            ck_decide_dir_name(k, w->target[k]));
}

/* direction = WORD[, WORD...]: FROM-to-TO, or both (saver-to-h5, h5-to-saver). 0 or -1
 * (failf called). */
static int parse_direction(struct parse *p, struct ck_watch_conf *w, const char *value)
{
  char *copy = strdup(value), *save = NULL, *word;
  int rc = 0, words = 0, from, to;

  if (copy == NULL) {
    failf(p, "out of memory");
    return -1;
  }
  memset(w->target, 0, sizeof(w->target));
  for (word = strtok_r(copy, ",", &save); word && rc == 0; word = strtok_r(NULL, ",", &save)) {
    char *end = word + strlen(word);
    while (*word == ' ' || *word == '\t')
      word++;
    while (end > word && (end[-1] == ' ' || end[-1] == '\t'))
      *--end = '\0';
    words++;
    if (!strcmp(word, "both")) {
      rc = add_direction(p, w, CK_KIND_SAVER, CK_KIND_H5) | add_direction(p, w, CK_KIND_H5, CK_KIND_SAVER);
    } else if ((rc = ck_decide_dir_parse(word, &from, &to)) == -2) {
      failf(p, "direction: '%s': the same format on both sides", word);
    } else if (rc != 0) {
      failf(p, "direction: '%s' is not FROM-to-TO (FROM, TO: saver, h5, torch, safetensors) or both", word);
    } else {
      rc = add_direction(p, w, from, to);
    }
  }
  if (rc == 0 && words == 0) {
    failf(p, "direction: empty (FROM-to-TO, several separated by commas, or both)");
    rc = -1;
  }
  free(copy);
  if (rc == 0)
    name_directions(w);
  return rc ? -1 : 0;
}

static int watch_key(struct parse *p, struct ck_watch_conf *w, const char *name, const char *value)
{
  char *copy;

  if (!strcmp(name, "path")) {
    char real[PATH_MAX];
    if (value[0] == 0)
      return failf(p, "path: empty");
    free(w->path);
    w->path = realpath(value, real) ? strdup(real) : strdup(value);
  } else if (!strcmp(name, "direction")) {
    if (parse_direction(p, w, value) != 0)
      return 0;
  } else if (!strcmp(name, "update_checkpoint_file")) {
    if ((w->update_checkpoint_file = ck_ckptfile_parse_policy(value)) < 0)
      return failf(p, "update_checkpoint_file: '%s' is not auto, always or never", value);
  } else if (!strcmp(name, "recursive") || !strcmp(name, "verify") || !strcmp(name, "events") ||
             !strcmp(name, "require_success") || !strcmp(name, "mirror_deletes")) {
    int *dst = !strcmp(name, "recursive") ? &w->recursive
               : !strcmp(name, "verify") ? &w->verify
               : !strcmp(name, "events") ? &w->events
               : !strcmp(name, "mirror_deletes") ? &w->mirror_deletes : &w->require_success;
    if (parse_bool(value, dst) != 0)
      return failf(p, "%s: '%s' is not true or false", name, value);
  } else if (!strcmp(name, "include") || !strcmp(name, "exclude")) {
    copy = strdup(value);
    if (parse_globs(copy, !strcmp(name, "include") ? w->include : w->exclude,
                    !strcmp(name, "include") ? &w->ninclude : &w->nexclude) != 0) {
      free(copy);
      return failf(p, "%s: more than 16 patterns", name);
    }
    free(copy);
  } else if (!strcmp(name, "layout")) {
    if (!strcmp(value, "flat"))
      w->layout = CK_H5_FLAT;
    else if (!strcmp(value, "nested"))
      w->layout = CK_H5_NESTED;
    else
      return failf(p, "layout: '%s' is not flat or nested", value);
  } else if (!strcmp(name, "compression")) {
    if (ck_h5_parse_compression(value, &w->compression, &w->gzip_level) != 0)
      return failf(p, "compression: '%s' is not none, gzip, gzip:N or lz4", value);
  } else if (!strcmp(name, "shard_size")) {
    if (ck_parse_size(value, &w->shard_size) != 0)
      return failf(p, "shard_size: '%s' is not a size", value);
  } else if (!strcmp(name, "workers") || !strcmp(name, "priority")) {
    char *end;
    long v = strtol(value, &end, 10);
    if (*end || end == value || (name[0] == 'w' ? v < 0 || v > 64 : v < -1000 || v > 1000))
      return failf(p, "%s: '%s' is not a number from %s", name, value, name[0] == 'w' ? "0 to 64" : "-1000 to 1000");
    *(name[0] == 'w' ? &w->workers : &w->priority) = (int)v;
  } else if (!strcmp(name, "settle_seconds") || !strcmp(name, "hook_timeout")) {
    double v;
    if (parse_seconds(value, &v) != 0 || (name[0] == 'h' && v < 1))
      return failf(p, "%s: '%s' is not a number of seconds%s", name, value, name[0] == 'h' ? " (at least 1)" : "");
    *(name[0] == 's' ? &w->settle_seconds : &w->hook_timeout) = v;
  } else if (!strcmp(name, "on_done") || !strcmp(name, "on_failed") || !strcmp(name, "output_group")) {
    char **dst = name[3] == 'd' ? &w->on_done : name[3] == 'f' ? &w->on_failed : &w->output_group;
    if (value[0] == '\0')
      return failf(p, "%s: empty", name);
    if (name[0] == 'o' && name[1] == 'u' && getgrnam(value) == NULL)
      return failf(p, "output_group: no group named '%s'", value);
    free(*dst);
    *dst = strdup(value);
  } else if (!strcmp(name, "output_mode")) {
    char *end;
    long v = strtol(value, &end, 8);
    if (*end || end == value || v < 0 || v > 0777 || (v & 0400) == 0)
      return failf(p, "output_mode: '%s' is not an octal mode from 0400 to 0777 (the owner must read)", value);
    w->output_mode = (int)v;
  } else if (!strcmp(name, "min_free")) {
    char *end;
    size_t n = strlen(value);
    if (n > 1 && value[n - 1] == '%') {
      w->min_free = 0;
      w->min_free_pct = strtod(value, &end);
      if (end != value + n - 1 || value[0] < '0' || value[0] > '9' || w->min_free_pct > 100)
        return failf(p, "min_free: '%s' is not a size or a percentage from 0%% to 100%%", value);
    } else if (ck_parse_size(value, &w->min_free) != 0) {
      return failf(p, "min_free: '%s' is not a size or a percentage from 0%% to 100%%", value);
    } else {
      w->min_free_pct = 0;
    }
  } else if (!strcmp(name, "shard_rule")) {
    const char *eq = strrchr(value, '=');
    if (!eq || eq == value || eq[1] < '0' || eq[1] > '9' || w->nrules == CK_MAX_RULES)
      return failf(p, "shard_rule: '%s' is not PATTERN=SHARD", value);
    w->rules[w->nrules].pattern = strndup(value, (size_t)(eq - value));
    w->rules[w->nrules].shard = atoi(eq + 1);
    w->nrules++;
  } else {
    return failf(p, "unknown key '%s' in [watch %s]", name, w->name);
  }
  return 1;
}

static struct ck_watch_conf *new_watch(struct ck_conf *c, const char *name)
{
  struct ck_watch_conf *nw = realloc(c->watches, (size_t)(c->nwatches + 1) * sizeof(*nw));
  struct ck_watch_conf *w;

  if (nw == NULL)
    return NULL;
  c->watches = nw;
  w = &nw[c->nwatches++];
  memset(w, 0, sizeof(*w));
  w->name = strdup(name);
  w->target[CK_KIND_SAVER] = CK_KIND_H5;
  w->target[CK_KIND_H5] = CK_KIND_SAVER;
  name_directions(w);
  w->recursive = 1;
  w->events = 1;
  w->update_checkpoint_file = CK_CKPTFILE_AUTO;
  w->min_free_pct = 5;
  w->settle_seconds = -1;
  w->hook_timeout = 60;
  w->output_mode = -1;
  w->gzip_level = 4;
  return w;
}

static int slurm_key(struct parse *p, const char *name, const char *value)
{
  struct ck_conf *c = p->c;

  if (!strcmp(name, "options")) {
    free(c->slurm_options);
    c->slurm_options = strdup(value);
  } else if (!strcmp(name, "poll_seconds")) {
    if (parse_seconds(value, &c->slurm_poll) != 0 || c->slurm_poll < 1)
      return failf(p, "poll_seconds: '%s' is not a number of seconds (at least 1)", value);
  } else {
    return failf(p, "unknown key '%s' in [slurm] (expected options or poll_seconds)", name);
  }
  return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
  struct parse *p = user;

  if (p->have_err)
    return 1; /* report the first error only */
  if (strcmp(section, p->section) != 0) { /* a new section starts */
    snprintf(p->section, sizeof(p->section), "%s", section);
    if (!strcmp(section, "ckptd")) {
      p->in_watch = 0;
    } else if (!strcmp(section, "slurm")) {
      p->in_watch = -2;
    } else if (!strncmp(section, "watch ", 6) && section[6]) {
      for (int i = 0; i < p->c->nwatches; i++)
        if (!strcmp(p->c->watches[i].name, section + 6))
          return failf(p, "duplicate section [%s]", section);
      if (new_watch(p->c, section + 6) == NULL)
        return failf(p, "out of memory");
      p->in_watch = p->c->nwatches;
    } else {
      return failf(p, "unknown section [%s] (expected [ckptd], [slurm] or [watch NAME])", section);
    }
  }
  if (p->in_watch == -2)
    return slurm_key(p, name, value);
  if (p->in_watch < 0)
    return failf(p, "key '%s' outside any section", name);
  if (p->in_watch == 0)
    return main_key(p, name, value);
  return watch_key(p, &p->c->watches[p->in_watch - 1], name, value);
}

static void defaults(struct ck_conf *c)
{
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

  memset(c, 0, sizeof(*c));
  c->workers = ncpu > 0 ? (int)(ncpu > 64 ? 64 : ncpu) : 1;
  c->memory_budget = 256u << 20;
  c->state_dir = strdup("var/state");
  c->status_file = NULL; /* default: state_dir/status.json */
  c->log_level = CK_LOG_INFO;
  c->settle_seconds = 5;
  c->rescan_seconds = 60;
  c->stop_timeout = 30;
  c->slurm_poll = 5;
  c->lease_seconds = 30;
}

/* The line (1-based) of `key = ...` in section [sec] of text, or of the section's
 * header when key is NULL; 0 if not found. inih does not tell handlers their line. */
static int line_of(const char *text, const char *sec, const char *key)
{
  int line = 0, in = 0;

  for (const char *p = text; *p; line++) {
    const char *end = strchr(p, '\n'), *q = p;
    size_t len = end ? (size_t)(end - p) : strlen(p);
    while (q < p + len && (*q == ' ' || *q == '\t'))
      q++;
    if (q < p + len && *q == '[') {
      const char *a = q + 1, *b = memchr(q, ']', (size_t)(p + len - q));
      while (b && a < b && (*a == ' ' || *a == '\t'))
        a++;
      in = b && (size_t)(b - a) >= strlen(sec) && strncmp(a, sec, strlen(sec)) == 0 &&
           strspn(a + strlen(sec), " \t") == (size_t)(b - a) - strlen(sec);
      if (in && key == NULL)
        return line + 1;
    } else if (in && key && strncmp(q, key, strlen(key)) == 0 && strspn(q + strlen(key), " \t=:") > 0) {
      return line + 1;
    }
    p = end ? end + 1 : p + len;
  }
  return 0;
}

__attribute__((format(printf, 2, 3)))
static void warnf(struct ck_conf *c, const char *fmt, ...)
{
  char line[600], *joined;
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  joined = ck_asprintf("%s%s\n", c->warnings ? c->warnings : "", line);
  if (joined) {
    free(c->warnings);
    c->warnings = joined;
  }
}

static int finish(struct parse *p, const char *text, const char *name, int line, struct ck_err *err)
{
  struct ck_conf *c = p->c;

  if (line != 0 || p->have_err) {
    if (line < 0)
      ck_err_set(err, -ENOMEM, "%s: out of memory", name);
    else if (p->have_err)
      ck_err_set(err, CK_EINVAL, "%s:%d: %s", name, line, p->err);
    else
      ck_err_set(err, CK_EINVAL, "%s:%d: syntax error", name, line);
    return -1;
  }
  if (c->nwatches == 0)
    return ck_err_set(err, CK_EINVAL, "%s: no [watch NAME] section: nothing to watch (conf/ckptd.ini shows one)", name);
  for (int i = 0; i < c->nwatches; i++) {
    struct ck_watch_conf *w = &c->watches[i];
    char sec[300];
    struct stat st;
    snprintf(sec, sizeof(sec), "watch %s", w->name);
    if (w->path == NULL)
      return ck_err_set(err, CK_EINVAL, "%s:%d: [watch %s] has no path", name, line_of(text, sec, NULL), w->name);
    if (w->path[0] != '/')
      return ck_err_set(err, CK_EINVAL, "%s:%d: [watch %s]: path %s does not exist and is not absolute", name,
                        line_of(text, sec, "path"), w->name, w->path);
    if (stat(w->path, &st) != 0) {
      w->missing = 1;
      warnf(c, "%s:%d: [watch %s]: path %s does not exist yet (%s); it is watched when it appears", name,
            line_of(text, sec, "path"), w->name, w->path, strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
      return ck_err_set(err, CK_EINVAL, "%s:%d: [watch %s]: path %s is not a directory", name,
                        line_of(text, sec, "path"), w->name, w->path);
    }
  }
  for (int i = 0; i < c->nwatches; i++)
    for (int k = 0; k < c->nwatches; k++) {
      const struct ck_watch_conf *in = &c->watches[i], *out = &c->watches[k];
      if (i != k && ck_conf_covers(out->path, out->recursive, in->path) &&
          (k < i || !ck_conf_covers(in->path, in->recursive, out->path)))
        return ck_err_set(err, CK_EINVAL,
                          "%s: [watch %s] (%s) is inside [watch %s] (%s): overlapping trees would convert the "
                          "same checkpoints under two settings; watch each directory from one tree only",
                          name, in->name, in->path, out->name, out->path);
    }
  if (c->status_file == NULL)
    c->status_file = ck_asprintf("%s/status.json", c->state_dir);
  if (c->control_socket == NULL) {
    struct stat st;
    c->control_socket = stat("/run/ckptd", &st) == 0 && S_ISDIR(st.st_mode)
                            ? strdup("/run/ckptd/control.sock")
                            : ck_asprintf("%s/control.sock", c->state_dir);
  }
  c->source = strdup(name);
  return 0;
}

int ck_conf_covers(const char *outer, int recursive, const char *inner)
{
  size_t n = strlen(outer);

  while (n > 1 && outer[n - 1] == '/')
    n--;
  if (strncmp(outer, inner, n) != 0)
    return 0;
  if (inner[n] == '\0' || (inner[n] == '/' && inner[n + strspn(inner + n, "/")] == '\0'))
    return 1; /* the same directory */
  return recursive && (inner[n] == '/' || (n == 1 && outer[0] == '/'));
}

/* inih merges repeated sections and reports a section only with its first key, so
 * section headers are checked here, with their own line numbers. */
static int check_sections(const char *text, const char *name, struct ck_err *err)
{
  char seen[64][256];
  int nseen = 0, line = 0;

  for (const char *p = text; *p; line++) {
    const char *end = strchr(p, '\n'), *q = p, *close;
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char sec[256];
    while (q < p + len && (*q == ' ' || *q == '\t'))
      q++;
    if (q < p + len && *q == '[' && (close = memchr(q, ']', (size_t)(p + len - q))) != NULL) {
      const char *a = q + 1, *b = close;
      while (a < b && (*a == ' ' || *a == '\t'))
        a++;
      while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
      snprintf(sec, sizeof(sec), "%.*s", (int)(b - a), a);
      if (strcmp(sec, "ckptd") != 0 && strcmp(sec, "slurm") != 0 && (strncmp(sec, "watch ", 6) != 0 || sec[6] == 0))
        return ck_err_set(err, CK_EINVAL, "%s:%d: unknown section [%s] (expected [ckptd], [slurm] or [watch NAME])", name,
                          line + 1, sec);
      for (int i = 0; i < nseen; i++)
        if (strcmp(seen[i], sec) == 0)
          return ck_err_set(err, CK_EINVAL, "%s:%d: duplicate section [%s]", name, line + 1, sec);
      if (nseen == 64)
        return ck_err_set(err, CK_EINVAL, "%s:%d: more than 64 sections", name, line + 1);
      snprintf(seen[nseen++], sizeof(seen[0]), "%s", sec);
    }
    p = end ? end + 1 : p + len;
  }
  return 0;
}

int ck_conf_parse_string(const char *text, const char *name, struct ck_conf *out, struct ck_err *err)
{
  struct parse p = { .c = out, .in_watch = -1 };
  int line;

  defaults(out);
  if (check_sections(text, name, err) != 0) {
    ck_conf_free(out);
    return -1;
  }
  line = ini_parse_string(text, handler, &p);
  if (finish(&p, text, name, line, err) != 0) {
    ck_conf_free(out);
    return -1;
  }
  return 0;
}

int ck_conf_load(const char *path, struct ck_conf *out, struct ck_err *err)
{
  FILE *f = fopen(path, "r");
  char *text;
  size_t n;
  int rc;

  memset(out, 0, sizeof(*out));
  if (f == NULL)
    return ck_err_set(err, -errno, "%s: cannot read: %s", path, strerror(errno));
  /* a configuration is small: bound it before reading it whole */
  if ((text = calloc(1, CK_CONF_MAX_BYTES + 1)) == NULL) {
    fclose(f);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  n = fread(text, 1, CK_CONF_MAX_BYTES + 1, f);
  fclose(f);
  if (n > CK_CONF_MAX_BYTES) {
    free(text);
    return ck_err_set(err, CK_EINVAL, "%s: larger than %d bytes", path, CK_CONF_MAX_BYTES);
  }
  if (memchr(text, 0, n) != NULL) {
    free(text);
    return ck_err_set(err, CK_EINVAL, "%s: contains a NUL byte: not a text file", path);
  }
  rc = ck_conf_parse_string(text, path, out, err);
  free(text);
  return rc;
}

int ck_conf_default(struct ck_conf *out, struct ck_err *err)
{
  static const char text[] = "[ckptd]\nstate_dir = var/state\nsettle_seconds = 2\nrescan_seconds = 30\n"
                             "[watch demo]\npath = var/model_dir\ndirection = both\n";
  int rc;

  if (access("var/model_dir", F_OK) != 0) {
    if (mkdir("var", 0755) != 0 && errno != EEXIST)
      return ck_err_set(err, -errno, "cannot create ./var: %s", strerror(errno));
    if (mkdir("var/model_dir", 0755) != 0 && errno != EEXIST)
      return ck_err_set(err, -errno, "cannot create ./var/model_dir: %s", strerror(errno));
  }
  rc = ck_conf_parse_string(text, "(built-in default)", out, err);
  return rc;
}

void ck_conf_free(struct ck_conf *c)
{
  free(c->warnings);
  c->warnings = NULL;
  for (int i = 0; i < c->nwatches; i++) {
    struct ck_watch_conf *w = &c->watches[i];
    free(w->on_done);
    free(w->on_failed);
    free(w->output_group);
    free(w->name);
    free(w->path);
    for (int k = 0; k < w->ninclude; k++)
      free(w->include[k]);
    for (int k = 0; k < w->nexclude; k++)
      free(w->exclude[k]);
    for (int k = 0; k < w->nrules; k++)
      free((char *)w->rules[k].pattern);
  }
  free(c->watches);
  free(c->source);
  free(c->state_dir);
  free(c->status_file);
  free(c->prometheus_file);
  free(c->control_socket);
  free(c->control_group);
  free(c->slurm_options);
  free(c->claims_dir);
  free(c->instance);
  memset(c, 0, sizeof(*c));
}

void ck_conf_print(const struct ck_conf *c)
{
  printf("config: %s\nworkers: %d\nmemory_budget: %llu\nstate_dir: %s\nstatus_file: %s\n"
         "settle_seconds: %g\nrescan_seconds: %g\nstop_timeout: %g\nworker_memory_limit: %llu\n"
         "worker_cpu_limit: %llu\n",
         c->source, c->workers, (unsigned long long)c->memory_budget, c->state_dir, c->status_file,
         c->settle_seconds, c->rescan_seconds, c->stop_timeout, (unsigned long long)c->worker_memory_limit,
         (unsigned long long)c->worker_cpu_limit);
  printf("executor: %s\n", c->executor == CK_EXEC_SLURM ? "slurm" : "local");
  if (c->executor == CK_EXEC_SLURM)
    printf("slurm options: %s\nslurm poll_seconds: %g\n", c->slurm_options ? c->slurm_options : "(none)", c->slurm_poll);
  if (c->claims_dir)
    printf("claims_dir: %s\nlease_seconds: %g\ninstance: %s\n", c->claims_dir, c->lease_seconds,
           c->instance ? c->instance : "(host name and state_dir)");
  for (int i = 0; i < c->nwatches; i++) {
    const struct ck_watch_conf *w = &c->watches[i];
    printf("watch %s: %s (", w->name, w->path);
    for (int k = CK_KIND_SAVER, n = 0; k < CK_KINDS; k++)
      if (w->target[k])
        printf("%s%s", n++ ? ", " : "", ck_decide_dir_name(k, w->target[k]));
    printf("%s%s)\n", w->recursive ? ", recursive" : "", w->events ? "" : ", rescans only");
  }
}
