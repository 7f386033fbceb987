/* The Slurm executor's supervisor process (`ckptd --slurm-job ...`, slurm_run.c). */
#ifndef CK_SLURM_RUN_H
#define CK_SLURM_RUN_H

/* Submit the worker command line after "--" as a batch job, follow it, relay its
 * protocol on fd 3. Arguments after --slurm-job: [--poll S] [--mem-mb N] [--cpus N]
 * [--options TEXT] -- EXE --worker convert ... Returns the exit status. */
int ck_slurm_run_main(int argc, char **argv);

/* Its exit status when the worker died by a signal on the node (a hostile file, as a
 * local worker's crash); any other end without a result line is the supervisor's own
 * death: the pool cancels the job and retries it. */
#define CK_SLURM_EXIT_CRASHED 3

#endif
