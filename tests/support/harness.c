/* The C integration test harness: see harness.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/hc.h"
#include "tests/support/harness.h"

/* Time a process gets to exit after SIGTERM before SIGKILL. */
#define TH_STOP_GRACE_MS 5000
#define TH_POLL_MS 20

int
th_tmpdir(char out[PATH_MAX])
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (hc_snprintf(out, PATH_MAX, "%s/hydra-th.XXXXXX", base) != 0)
		return -1;
	return mkdtemp(out) != NULL ? 0 : -1;
}

static int
th_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void
th_rm_rf(const char *path)
{
	nftw(path, th_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int
th_free_port(void)
{
	int port = -1;

	if (hc_free_port("127.0.0.1", &port, NULL) != 0)
		return -1;
	return port;
}

int
th_spawn(struct th_proc *p, const char *log, char *const argv[])
{
	pid_t parent = getpid();
	pid_t pid;
	int fd;

	p->pid = -1;
	if (hc_strlcpy(p->log, log, sizeof(p->log)) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		setpgid(0, 0);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, STDIN_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	p->pid = pid;
	return 0;
}

int
th_wait_tcp(int port, int ms)
{
	int64_t deadline = hc_now_ms() + ms;

	for (;;) {
		struct sockaddr_in sa;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int ok;

		if (fd < 0)
			return -1;
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return 0;
		if (hc_now_ms() >= deadline)
			return -1;
		poll(NULL, 0, TH_POLL_MS);
	}
}

int
th_stop(struct th_proc *p)
{
	int64_t deadline;
	int status = 0;
	pid_t r;

	if (p->pid <= 0)
		return -1;
	kill(p->pid, SIGTERM);
	deadline = hc_now_ms() + TH_STOP_GRACE_MS;
	for (;;) {
		r = waitpid(p->pid, &status, WNOHANG);
		if (r == p->pid)
			break;
		if (r < 0) {
			status = -1;
			break;
		}
		if (hc_now_ms() >= deadline) {
			kill(p->pid, SIGKILL);
			if (waitpid(p->pid, &status, 0) < 0)
				status = -1;
			break;
		}
		poll(NULL, 0, TH_POLL_MS);
	}
	p->pid = -1;
	return status;
}

int
th_run(char *const argv[])
{
	int status = 0;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, STDIN_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
th_write_file(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc;

	if (fd < 0)
		return -1;
	rc = hc_write_all(fd, text, len) == 0 ? 0 : -1;
	close(fd);
	return rc;
}

int
th_have(const char *prog)
{
	char *const argv[] = { "sh", "-c", "command -v \"$0\" >/dev/null 2>&1",
	                       (char *)prog, NULL };

	return th_run(argv) == 0;
}
