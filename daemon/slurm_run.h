/* The Slurm executor's supervisor process (`ckptd --slurm-job ...`, slurm_run.c). */
#ifndef CK_SLURM_RUN_H
#define CK_SLURM_RUN_H

/* Submit the worker command line after "--" as a batch job, follow it, relay its
 * protocol on fd 3. Arguments after --slurm-job: [--poll S] [--mem-mb N] [--cpus N]
 * [--options TEXT] -- EXE --worker convert ... Returns the exit status. */
int ck_slurm_run_main(int argc, char **argv);

#endif
