/* `ckpt convert`: any of the four formats to any other. */
#ifndef CK_CKPT_CONVERT_H
#define CK_CKPT_CONVERT_H

#define CK_CONVERT_USAGE                                                                                               \
  "  convert SRC DST [--to saver|h5|torch|safetensors] [--strict] [converter options]\n"                               \
  "      convert between TensorFlow bundles, HDF5 (.h5 .hdf5 .mdl), PyTorch (.pt .pth .bin)\n"                        \
  "      and safetensors. SRC's format comes from its content; DST's from --to, else its\n"                           \
  "      extension (anything else is a TF prefix). Tensors the target cannot hold (strings\n"                         \
  "      for torch and safetensors) are skipped and listed, or an error with --strict.\n"                             \
  "      Options as tensorflow-to-h5 / h5-to-tensorflow: --verify --force --quiet\n"                                  \
  "      --buffer-size --threads --layout --compression --shard-size --no-checkpoint-file\n"

int ck_cmd_convert(int argc, char **argv);

#endif
