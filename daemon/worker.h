/* The worker: `ckptd --worker convert|probe ...`, the child process that does one
 * conversion or one HDF5 completeness probe for the daemon and reports on fd 3 in the
 * protocol of wproto.h. A crash, hang or memory blow-up inside libhdf5 ends this
 * process, never the daemon. */
#ifndef CK_WORKER_H
#define CK_WORKER_H

/* The file descriptor the daemon reads reports from. */
#define CK_WORKER_FD 3

/* Run the worker with the arguments after --worker. Returns the exit status:
 * 0 done (or probe answered), 1 failed, 2 usage. */
int ck_worker_main(int argc, char **argv);

#endif
