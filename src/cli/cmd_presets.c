/* plstm presets: the training presets with one-line descriptions, or one
 * preset's full configuration. */
#include "cli/commands.h"
#include "plstm/plstm.h"
#include "plstm/trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_presets(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: plstm presets [NAME]\n\nLists the presets of `plstm train`; with NAME "
               "prints that preset's configuration as JSON.\n");
        return 0;
    }
    if (argc > 2) {
        fprintf(stderr, "usage: plstm presets [NAME]\n");
        return 2;
    }
    if (argc == 2) {
        plstm_train_config cfg;
        char *js = NULL;
        plstm_status s = plstm_train_config_preset(argv[1], &cfg);
        if (s == PLSTM_OK)
            s = plstm_train_config_to_json(&cfg, 0, &js);
        if (s != PLSTM_OK)
            return cli_report_error("presets", s);
        printf("%s\n", js);
        free(js);
        return 0;
    }
    for (const plstm_train_preset *p = plstm_train_presets(); p->name; p++)
        printf("%-20s %s\n", p->name, p->description);
    for (int i = 0; plstm_tu_preset_name(i); i++)
        printf("%-20s TU graph classification, 10-fold CV (80/10/10) as in the paper\n",
               plstm_tu_preset_name(i));
    return 0;
}
