/* The control socket (see control.h). Each connection carries one request line and
 * gets one reply line; a client that sends more than a line, or nothing within 5 s,
 * is closed. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "ctl.h"

struct ck_control {
  uv_pipe_t server;
  char *path;
  ino_t ino; /* of the socket we bound: only that one is removed at close */
  ck_control_fn fn;
  void *ctx;
};

struct client {
  uv_pipe_t pipe;
  ck_control_fn fn; /* copies: the server may be closed and freed while a client is open */
  void *ctx;
  uv_timer_t timer; /* the 5 s limit */
  uv_write_t write;
  char buf[CK_CTL_LINE_MAX + 1];
  size_t n;
  char reply[CK_CTL_LINE_MAX + 64];
  int handles; /* open handles: the client goes when both have closed */
  int answered;
};

static void client_closed(uv_handle_t *h)
{
  struct client *cl = h->data;

  if (--cl->handles == 0)
    free(cl);
}

static void client_close(struct client *cl)
{
  if (!uv_is_closing((uv_handle_t *)&cl->pipe))
    uv_close((uv_handle_t *)&cl->pipe, client_closed);
  if (!uv_is_closing((uv_handle_t *)&cl->timer))
    uv_close((uv_handle_t *)&cl->timer, client_closed);
}

static void written(uv_write_t *w, int status)
{
  (void)status;
  client_close(w->data);
}

/* Act on the line and send the reply; the connection closes once it is written. */
static void answer(struct client *cl)
{
  char arg[CK_CTL_LINE_MAX];
  int verb;
  uv_buf_t b;

  cl->answered = 1;
  uv_read_stop((uv_stream_t *)&cl->pipe);
  cl->buf[cl->n] = '\0';
  if (ck_ctl_parse(cl->buf, &verb, arg, sizeof(arg)) != 0)
    snprintf(cl->reply, sizeof(cl->reply),
             "error expected one line: retry PATH, skip PATH, reconvert PATH, pause TREE or resume TREE");
  else
    cl->fn(cl->ctx, verb, arg, cl->reply, sizeof(cl->reply) - 1);
  cl->reply[strcspn(cl->reply, "\n")] = '\0';
  strcat(cl->reply, "\n");
  b = uv_buf_init(cl->reply, (unsigned)strlen(cl->reply));
  cl->write.data = cl;
  if (uv_write(&cl->write, (uv_stream_t *)&cl->pipe, &b, 1, written) != 0)
    client_close(cl);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  struct client *cl = h->data;

  (void)suggested;
  *buf = uv_buf_init(cl->buf + cl->n, (unsigned)(CK_CTL_LINE_MAX - cl->n));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
  struct client *cl = s->data;
  char *nl;

  (void)buf;
  if (cl->answered)
    return;
  if (nread < 0) {
    if (nread == UV_EOF && cl->n > 0)
      answer(cl); /* a request without its newline */
    else
      client_close(cl);
    return;
  }
  cl->n += (size_t)nread;
  if ((nl = memchr(cl->buf, '\n', cl->n)) != NULL) {
    cl->n = (size_t)(nl - cl->buf);
    answer(cl);
  } else if (cl->n >= CK_CTL_LINE_MAX) {
    cl->n = 0; /* too long: refused by the parser */
    answer(cl);
  }
}

static void on_timeout(uv_timer_t *t)
{
  client_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
  struct ck_control *c = server->data;
  struct client *cl;

  if (status != 0 || (cl = calloc(1, sizeof(*cl))) == NULL)
    return;
  cl->fn = c->fn;
  cl->ctx = c->ctx;
  uv_pipe_init(server->loop, &cl->pipe, 0);
  uv_timer_init(server->loop, &cl->timer);
  cl->pipe.data = cl->timer.data = cl;
  cl->handles = 2;
  if (uv_accept(server, (uv_stream_t *)&cl->pipe) != 0 ||
      uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) != 0) {
    client_close(cl);
    return;
  }
  uv_timer_start(&cl->timer, on_timeout, 5000, 0);
}

/* 1 if a process accepts connections on the socket at path. */
static int socket_alive(const char *path)
{
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), alive;

  if (fd < 0 || strlen(path) >= sizeof(a.sun_path)) {
    if (fd >= 0)
      close(fd);
    return 0;
  }
  memcpy(a.sun_path, path, strlen(path) + 1);
  alive = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return alive;
}

static void server_closed(uv_handle_t *h)
{
  free(h->data);
}

int ck_control_start(uv_loop_t *loop, const char *path, const char *group, ck_control_fn fn, void *ctx,
                     struct ck_control **out, struct ck_err *err)
{
  struct ck_control *c = calloc(1, sizeof(*c));
  struct stat st;
  struct group *g = NULL;
  int rc;

  *out = NULL;
  if (c == NULL || (c->path = strdup(path)) == NULL) {
    free(c);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  if (group && (g = getgrnam(group)) == NULL) {
    rc = ck_err_set(err, CK_EINVAL, "control_group: no group named '%s'", group);
    goto fail;
  }
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      rc = ck_err_set(err, -EEXIST, "%s: exists and is not a socket: not replacing it", path);
      goto fail;
    }
    if (socket_alive(path)) {
      rc = ck_err_set(err, -EADDRINUSE, "%s: another ckptd listens there: set control_socket", path);
      goto fail;
    }
    unlink(path); /* a socket left by an instance that died */
  }
  c->fn = fn;
  c->ctx = ctx;
  uv_pipe_init(loop, &c->server, 0);
  c->server.data = c;
  if ((rc = uv_pipe_bind(&c->server, path)) != 0 || (rc = uv_listen((uv_stream_t *)&c->server, 16, on_connection)) != 0) {
    ck_err_set(err, rc, "%s: cannot listen: %s", path, uv_strerror(rc));
    free(c->path);
    c->path = NULL;
    uv_close((uv_handle_t *)&c->server, server_closed); /* frees c once the loop has closed it */
    return rc;
  }
  if (lstat(path, &st) == 0)
    c->ino = st.st_ino;
  if (chmod(path, 0660) != 0 || (g && chown(path, (uid_t)-1, g->gr_gid) != 0)) {
    rc = ck_err_set(err, -errno, "%s: cannot set mode 0660%s%s: %s", path, g ? " and group " : "", g ? group : "",
                    strerror(errno));
    ck_control_close(c);
    return rc;
  }
  *out = c;
  return 0;
fail:
  free(c->path);
  free(c);
  return rc;
}

void ck_control_close(struct ck_control *c)
{
  if (c == NULL)
    return;
  struct stat st;

  if (c->path && lstat(c->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == c->ino)
    unlink(c->path);
  free(c->path);
  c->path = NULL;
  uv_close((uv_handle_t *)&c->server, server_closed);
}
