/* Fuzz target: what other hosts and Slurm hand ckptd in a cluster. A claim file
 * (another instance's, or anyone's: claims_dir is shared), squeue's, sacct's and
 * sbatch's output, and a job's report file, line by line through the worker
 * protocol. Build with `make fuzz-cluster` (libFuzzer); `make check` runs it over
 * its corpus and mutants (tests/fuzz_cluster_regress). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/claim.h"
#include "../../daemon/slurm.h"
#include "../../daemon/wproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct ck_claim_info c;
  char *text = malloc(size + 1), *line, *save = NULL;
  uint64_t id;

  if (text == NULL)
    return 0;
  if (ck_claim_parse((const char *)data, size, &c) == 0 && (c.instance[255] || c.token[32] || c.tag[8]))
    abort(); /* every field stays terminated */
  memcpy(text, data, size);
  text[size] = 0;
  (void)ck_slurm_final(ck_slurm_state(text));
  (void)ck_slurm_parse_jobid(text, &id);
  (void)ck_slurm_cancelled_by(text);
  (void)ck_slurm_unreachable(text);
  (void)ck_slurm_unknown_job(text);
  for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    struct ck_wmsg m;
    char back[CK_WPROTO_LINE_MAX + 64];
    if (ck_wmsg_parse(line, &m) == 0)
      ck_wmsg_format(&m, back, sizeof(back));
  }
  free(text);
  return 0;
}
