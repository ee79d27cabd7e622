#include "support/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

int lvk_test_cli(const char *env, const char *args, const char *out_path, const char *err_path)
{
    char cmd[8192], err[1100];
    out_path = out_path ? out_path : "/dev/null";
    if (err_path && strcmp(err_path, out_path) == 0)
        snprintf(err, sizeof err, "2>&1");
    else
        snprintf(err, sizeof err, "2>'%s'", err_path ? err_path : "/dev/null");
    snprintf(cmd, sizeof cmd, "%s '%s' %s >'%s' %s", env, LVK_TEST_LUCIDVK, args, out_path, err);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

bool lvk_test_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}
