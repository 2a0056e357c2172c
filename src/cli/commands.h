/* CLI subcommands. Each returns the process exit code (0 = success). */
#ifndef PLSTM_CLI_COMMANDS_H
#define PLSTM_CLI_COMMANDS_H

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} cli_command;

int cmd_verify(int argc, char **argv);
int cmd_ape(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_presets(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_tu(int argc, char **argv);

/* Prints "plstm: <what>: <library message>" to stderr and returns 1. */
int cli_report_error(const char *what, int status);

#endif
