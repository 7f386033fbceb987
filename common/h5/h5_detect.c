/* Which HDF5 layout a file follows (docs/h5-detection.md): a pure decision on the
 * evidence the reader gathers, so that every rule is testable from a table.
 * The version attribute alone is never trusted: its type and value count, and so do
 * ckptd's own attributes, __SUCCESS__, "<key>.__metadata__" attributes, __spec__,
 * Cerebras' per-dataset attributes (__H5_TYPE__, is_bfloat16) and escaped names. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "h5_internal.h"

int ck_h5_version_number(const char *s, double *v)
{
  char *end;
  size_t i = 0;

  /* Cerebras writes "0.4" / "0.5": digits, one dot, digits; "1.0.0" is not a number */
  while (s[i] >= '0' && s[i] <= '9')
    i++;
  if (i == 0 || s[i] != '.' || !(s[i + 1] >= '0' && s[i + 1] <= '9'))
    return -1;
  for (i++; s[i] >= '0' && s[i] <= '9'; i++)
    ;
  if (s[i] != 0)
    return -1;
  *v = strtod(s, &end);
  return 0;
}

/* A Cerebras saver version: a number in [0, 1) (legacy 0.3/0.4, then 0.5). */
static int cerebras_version(const struct ck_h5_evidence *e, double *v)
{
  if (!e->has_version_number)
    return 0;
  *v = e->version;
  return *v >= 0 && *v < 1;
}

void ck_h5_detect(const struct ck_h5_evidence *e, struct ck_h5_layout *out)
{
  double v = 0;
  int cver = cerebras_version(e, &v);

  memset(out, 0, sizeof(*out));
  if (e->ckptd) {
    out->layout = CK_H5_LAYOUT_CKPTD;
    /* a torch tree ckptd wrote in Cerebras' 0.5 layout keeps its keys verbatim */
    out->unquote_root = !(cver && v >= 0.5);
    if (!e->success)
      out->refuse = "no __SUCCESS__ attribute: the ckptd checkpoint was not completely saved";
  } else if (e->metadata || (cver && v >= 0.5)) {
    out->layout = CK_H5_LAYOUT_CEREBRAS05;
    if (!e->success)
      out->refuse = "no __SUCCESS__ attribute: the Cerebras 0.5 checkpoint was not completely saved";
  } else if (cver || e->spec || (e->cerebras_marks && e->escaped_names)) {
    out->layout = CK_H5_LAYOUT_CEREBRAS_LEGACY;
    out->unquote_root = 1;
  } else {
    out->layout = CK_H5_LAYOUT_PLAIN;
  }
}

const char *ck_h5_layout_name(int layout)
{
  switch (layout) {
  case CK_H5_LAYOUT_CKPTD: return "ckptd";
  case CK_H5_LAYOUT_CEREBRAS_LEGACY: return "Cerebras legacy";
  case CK_H5_LAYOUT_CEREBRAS05: return "Cerebras 0.5";
  default: return "h5py";
  }
}
