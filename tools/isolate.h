/* Run a tool's format work in a forked child, so that a crash inside libhdf5 on a
 * corrupt file, or SIGINT/SIGTERM/SIGHUP during a conversion, ends with a clear
 * message, a meaningful exit status and none of the child's temporaries left. */
#ifndef CK_ISOLATE_H
#define CK_ISOLATE_H

/* Environment variable that, when set to a non-empty value other than "0", makes
 * ck_isolate_run call fn in-process (a debugging switch; the tests use it to show
 * what an unprotected process does). */
#define CK_ISOLATE_ENV "CKPTD_NO_ISOLATE"

/* Fork; the child runs fn(arg) and exits with its return value (an exit status).
 * Call before any thread is started or any HDF5 call is made.
 * Returns what the tool should exit with:
 *  - the child's exit status when it exits;
 *  - 1 when it dies by a crash signal, after printing
 *    "PROG: WHAT: corrupt HDF5 file: libhdf5 crashed reading it (SIGSEGV)";
 *  - 128+signo when the tool gets SIGINT, SIGTERM or SIGHUP: the child is killed
 *    and waited for first.
 * In every case the child's temporaries (ck_temp_name's names with this instance
 * and the child's pid) in each of the NULL-terminated cleanup_dirs are removed. */
int ck_isolate_run(int (*fn)(void *), void *arg, const char *what, const char *const *cleanup_dirs);

#endif
