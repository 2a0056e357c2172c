/* Placeholder: being written. */
#include "cli/commands.h"

#include <stdio.h>

int cmd_verify(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "plstm verify: not implemented yet\n");
    return 1;
}
