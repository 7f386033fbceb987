/* `ckpt ctl`: send one request to a running ckptd's control socket. */
#ifndef CK_CKPT_CTL_H
#define CK_CKPT_CTL_H

#define CK_CTL_USAGE                                                                                                   \
  "  ctl [--socket PATH | --config FILE] retry|skip|reconvert PATH | pause|resume TREE\n"                             \
  "      ask a running ckptd, at once: retry a failed or blocked checkpoint now (no backoff),\n"                       \
  "      skip one (until it changes; a running conversion is stopped), reconvert one that\n"                          \
  "      was converted, pause or resume a [watch TREE] (running jobs finish). PATH: a\n"                             \
  "      bundle's prefix or one of its files, or an .h5. The socket: --socket, else\n"                               \
  "      control_socket of --config FILE, else /run/ckptd/control.sock or\n"                                          \
  "      ./var/state/control.sock. Exit 0 when ckptd says ok, 1 when it refuses, 2 usage\n"

int ck_cmd_ctl(int argc, char **argv);

#endif
