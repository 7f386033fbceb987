/* runstat CMD ARGS...: run a command, print "WALL_SECONDS MAXRSS_KIB EXIT" on stderr.
 * The benchmarks use it for peak RSS without depending on GNU time. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  struct timespec a, b;
  struct rusage ru;
  int status;
  pid_t pid;

  if (argc < 2) {
    fprintf(stderr, "usage: runstat CMD [ARGS...]\n");
    return 2;
  }
  clock_gettime(CLOCK_MONOTONIC, &a);
  if ((pid = fork()) == 0) {
    execvp(argv[1], argv + 1);
    perror(argv[1]);
    _exit(127);
  }
  if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) {
    perror("runstat");
    return 2;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  fprintf(stderr, "%.6f %ld %d\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9,
          ru.ru_maxrss, WIFEXITED(status) ? WEXITSTATUS(status) : 128);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
