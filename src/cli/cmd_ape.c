/* Placeholder: being written. */
#include "cli/commands.h"

#include <stdio.h>

int cmd_ape(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "plstm ape: not implemented yet\n");
    return 1;
}
