/* `ckpt ctl` (see ckpt_ctl.h): the client side of daemon/ctl.h's protocol. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../daemon/conf.h"
#include "../daemon/ctl.h"
#include "ckpt_ctl.h"
#include "cli.h"
#include "fileio.h"

/* An absolute path naming the same file as the daemon's tree walk does (real
 * directories), without requiring the file itself to exist (a bundle's prefix). */
static char *absolute(const char *path)
{
  char *dir = ck_dirname(path), *base = ck_basename(path), real[PATH_MAX], *out = NULL;

  if (dir && base)
    out = realpath(dir, real) ? ck_path_join(real, base) : NULL;
  free(dir);
  free(base);
  return out ? out : strdup(path);
}

static int talk(const char *sock, const char *line, char *reply, size_t len)
{
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  size_t got = 0;
  int fd;

  if (strlen(sock) >= sizeof(a.sun_path))
    return -ENAMETOOLONG;
  memcpy(a.sun_path, sock, strlen(sock) + 1);
  if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || ck_write_full(fd, line, strlen(line)) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  while (got + 1 < len) {
    ssize_t n = read(fd, reply + got, len - 1 - got);
    if (n <= 0)
      break;
    got += (size_t)n;
    if (memchr(reply, '\n', got))
      break;
  }
  close(fd);
  reply[got] = '\0';
  reply[strcspn(reply, "\n")] = '\0';
  return got > 0 ? 0 : -ECONNRESET;
}

int ck_cmd_ctl(int argc, char **argv)
{
  static const struct option opts[] = { { "socket", required_argument, NULL, 's' },
                                        { "config", required_argument, NULL, 'c' }, { NULL, 0, NULL, 0 } };
  const char *sock = NULL, *config = NULL;
  char line[CK_CTL_LINE_MAX + 8], reply[CK_CTL_LINE_MAX + 64], check[CK_CTL_LINE_MAX];
  char *arg = NULL, *conf_sock = NULL;
  struct stat st;
  int o, verb, rc;

  optind = 1;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (o == 's')
      sock = optarg;
    else if (o == 'c')
      config = optarg;
    else
      goto usage;
  }
  if (argc - optind != 2 || (sock && config))
    goto usage;
  if (config) {
    struct ck_conf c;
    struct ck_err err = { 0 };
    if (ck_conf_load(config, &c, &err) != 0) {
      fprintf(stderr, "ckpt ctl: %s\n", err.msg);
      return CK_EXIT_USAGE;
    }
    conf_sock = strdup(c.control_socket);
    ck_conf_free(&c);
    sock = conf_sock;
  } else if (sock == NULL) {
    sock = stat("/run/ckptd/control.sock", &st) == 0 ? "/run/ckptd/control.sock" : "var/state/control.sock";
  }
  arg = strcmp(argv[optind], "pause") == 0 || strcmp(argv[optind], "resume") == 0 ? strdup(argv[optind + 1])
                                                                                   : absolute(argv[optind + 1]);
  snprintf(line, sizeof(line), "%s %s\n", argv[optind], arg ? arg : "");
  if (arg == NULL || ck_ctl_parse(line, &verb, check, sizeof(check)) != 0) {
    free(arg);
    free(conf_sock);
    goto usage;
  }
  if ((rc = talk(sock ? sock : "", line, reply, sizeof(reply))) != 0) {
    fprintf(stderr, "ckpt ctl: %s: %s (is ckptd running, and may you use its socket?)\n", sock ? sock : "",
            strerror(-rc));
    free(arg);
    free(conf_sock);
    return CK_EXIT_FAIL;
  }
  free(arg);
  free(conf_sock);
  printf("%s\n", reply);
  return strncmp(reply, "ok", 2) == 0 ? 0 : CK_EXIT_FAIL;
usage:
  fprintf(stderr, "usage: ckpt\n" CK_CTL_USAGE);
  return CK_EXIT_USAGE;
}
