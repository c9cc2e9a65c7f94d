/*
 * The namespaces sandbox's init once the sandbox is set up: pid 1 of its pid namespace.
 *
 * runtime/isolate.py's init, a Python interpreter, builds the sandbox, forks the runtime (and,
 * for a sandbox without network, the relay) and then execs this program, which keeps its
 * children: an interpreter holds about 3 MB of its own for as long as the sandbox lives, this
 * a few pages. It reaps every process that ends in the sandbox (orphans are re-parented to
 * it) until the runtime ends, then writes the runtime's end to REPORT_FD, as "exit N" or
 * "signal N", and exits: the kernel then kills whatever is left in the pid namespace.
 *
 *     lambdalet-init RUNTIME_PID REPORT_FD
 *
 * Built on the host by lambdalet.sandbox.native_init with the C compiler, if there is one.
 * Nothing inside the sandbox can signal it: pid 1 only gets the signals it handles, and it
 * handles none.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define SETUP_FAILED 125

int main(int argc, char **argv) {
    if (argc != 3) {
        return SETUP_FAILED;
    }
    pid_t runtime = (pid_t)strtol(argv[1], NULL, 10);
    int report_fd = (int)strtol(argv[2], NULL, 10);
    char report[32];
    int length;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid == runtime) {
            if (WIFSIGNALED(status)) {
                length = snprintf(report, sizeof report, "signal %d\n", WTERMSIG(status));
            } else {
                length = snprintf(report, sizeof report, "exit %d\n", WEXITSTATUS(status));
            }
            break;
        }
        if (pid < 0 && errno != EINTR) { /* no child left: cannot happen before the runtime */
            length = snprintf(report, sizeof report, "exit %d\n", SETUP_FAILED);
            break;
        }
    }
    if (write(report_fd, report, (size_t)length) != length) {
        return SETUP_FAILED;
    }
    return 0;
}
