/* plstm command-line tool: dispatches to subcommands. */
#include "cli/blas_tune.h"
#include "cli/commands.h"
#include "plstm/plstm.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>

static const cli_command commands[] = {
    {"verify", "recompute a reference test-vector file and compare", cmd_verify},
    {"ape", "Arrow Pointing Extrapolation data: render samples, print statistics", cmd_ape},
    {"train", "train a model on APE (presets, checkpoints, resume, curves)", cmd_train},
    {"eval", "evaluate a training checkpoint on an APE split", cmd_eval},
    {"presets", "list the training presets", cmd_presets},
    {"forward", "run the vision model on images: logits (and features)", cmd_forward},
    {"tu", "TU graph classification benchmark (10-fold CV) with the graph model", cmd_tu},
};
enum { NUM_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f)
{
    fprintf(f, "usage: plstm <command> [options]   (plstm <command> --help for details)\n\n"
               "commands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-10s %s\n", "version", "print the version");
}

int cli_report_error(const char *what, int status)
{
    fprintf(stderr, "plstm: %s: %s: %s\n", what, plstm_status_name((plstm_status)status),
            plstm_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    plstm_program_tune_blas(argv);
#ifdef __GLIBC__
    /* Training steps free and re-allocate the same scratch blocks every step;
     * keeping freed memory in the heap (not handing it back to the kernel)
     * saves the page faults, about a fifth of a TU graph step. */
    mallopt(M_MMAP_MAX, 0); /* large blocks too: mmap'd ones are unmapped on free */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "version") || !strcmp(name, "--version")) {
        printf("plstm %s\n", PLSTM_VERSION_STRING);
        return 0;
    }
    for (int i = 0; i < NUM_COMMANDS; i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "plstm: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
