/* The `cotangent` command (config/cli.c does the work). */
#include <stdio.h>

#include "config_internal.h"

int main(int argc, char **argv) {
  return ct_cli_main(argc, argv, stdout, stderr);
}
