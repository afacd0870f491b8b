/*
 * th: the integration test harness for C tests. Real processes on loopback
 * ports found free at run time, readiness by polling, stop by PID with TERM
 * then KILL. Children die with the test process (PR_SET_PDEATHSIG), so a
 * crashed test leaves nothing running.
 */
#ifndef TH_HARNESS_H
#define TH_HARNESS_H

#include <limits.h>
#include <sys/types.h>

struct th_proc {
	pid_t pid;            /* -1 when not running */
	char log[PATH_MAX];   /* its stdout and stderr */
};

/* Creates a fresh directory under $TMPDIR or /tmp into out. 0 or -1. */
int th_tmpdir(char out[PATH_MAX]);
/* Removes path and everything below it. This function cannot fail loudly. */
void th_rm_rf(const char *path);
/* A port free on 127.0.0.1 for both TCP and UDP, or -1. */
int th_free_port(void);
/* Starts argv[0] (searched in PATH) with output to log. 0 or -1. */
int th_spawn(struct th_proc *p, const char *log, char *const argv[]);
/* Polls a TCP connect to 127.0.0.1:port until it succeeds (0) or ms pass (-1). */
int th_wait_tcp(int port, int ms);
/* Stops p: TERM, up to 5 s, then KILL. Returns the exit status or -1. */
int th_stop(struct th_proc *p);
/* Runs argv to completion; its exit status, or -1 when it could not run. */
int th_run(char *const argv[]);
/* Writes text to path. 0 or -1. */
int th_write_file(const char *path, const char *text, size_t len);
/* 1 when the program is found in PATH (or is an absolute path that runs). */
int th_have(const char *prog);

#endif
