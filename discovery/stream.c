/*
 * The stream supervisor: runs the Moonlight command against the chosen body
 * and treats an early exit as a stream-launch failure (seed, client change 2).
 *
 * Signals reach the loop through a self-pipe: the handlers only record the
 * signal and write one byte, and every wait is a poll on that pipe. SIGHUP
 * (the kiosk's session or terminal going away) stops the stream like SIGTERM:
 * a supervisor without its session has nobody to stream to. The child gets
 * SIGTERM from the kernel if the agent dies without forwarding (SIGKILL), so
 * a stream never outlives its supervisor.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "discovery/discovery.h"

/* The signal that asked us to stop (SIGTERM, SIGINT or SIGHUP), 0 until then. */
static volatile sig_atomic_t stream_stop_sig;
static int stream_wake[2] = { -1, -1 };

static void
stream_on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
		stream_stop_sig = sig;
	if (stream_wake[1] >= 0)
		(void)!write(stream_wake[1], "", 1);
	errno = saved;
}

static void
drain_wake(void)
{
	char buf[64];

	while (read(stream_wake[0], buf, sizeof(buf)) > 0)
		;
}

/* Waits until deadline_ms (monotonic) or a signal, whichever is first. */
static void
wait_until(int64_t deadline_ms)
{
	int64_t left = deadline_ms - hc_now_ms();
	struct pollfd p = { .fd = stream_wake[0], .events = POLLIN };

	if (left <= 0)
		return;
	if (poll(&p, 1, left > 60000 ? 60000 : (int)left) > 0)
		drain_wake();
}

/* Sleeps until deadline_ms unless a stop signal comes first. */
static void
sleep_until(int64_t deadline_ms)
{
	while (stream_stop_sig == 0 && hc_now_ms() < deadline_ms)
		wait_until(deadline_ms);
}

char *
disc_subst_ip(const char *arg, const char *ip)
{
	static const char token[] = "{ip}";
	size_t tlen = sizeof(token) - 1, iplen = strlen(ip), n = 0, o = 0;
	const char *p;
	char *out;

	for (p = strstr(arg, token); p != NULL; p = strstr(p + tlen, token))
		n++;
	out = malloc(strlen(arg) + n * iplen + 1);
	if (out == NULL)
		return NULL;
	for (p = arg; *p != '\0';) {
		if (strncmp(p, token, tlen) == 0) {
			memcpy(out + o, ip, iplen);
			o += iplen;
			p += tlen;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	return out;
}

static void
free_argv(char **v, int n)
{
	int i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static const char *
sig_name(int sig)
{
	switch (sig) {
	case SIGINT: return "SIGINT";
	case SIGHUP: return "SIGHUP";
	default:     return "SIGTERM";
	}
}

/* Starts argv with {ip} substituted. 0 with *pid set; HC_EUSAGE when the
 * command cannot be run at all (exec failed: retrying cannot help). */
static int
launch(int argc, char *const *argv, const char *ip, pid_t *pid, struct hc_err *err)
{
	char **v = NULL;
	int ep[2] = { -1, -1 };
	int child_errno = 0;
	ssize_t got;
	pid_t parent;
	int i, rc = 0;

	*pid = -1;
	v = calloc((size_t)argc + 1, sizeof(*v));
	if (v == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	for (i = 0; i < argc; i++) {
		v[i] = disc_subst_ip(argv[i], ip);
		if (v[i] == NULL) {
			rc = hc_err_set(err, HC_ENOMEM, "out of memory");
			goto done;
		}
	}
	/* Tells an exec failure (errno written) from a started program (EOF). */
	if (pipe2(ep, O_CLOEXEC) != 0) {
		rc = hc_err_set(err, HC_ESOFTWARE, "pipe: %s", strerror(errno));
		goto done;
	}
	parent = getpid();
	*pid = fork();
	if (*pid < 0) {
		rc = hc_err_set(err, HC_ESOFTWARE, "fork: %s", strerror(errno));
		goto done;
	}
	if (*pid == 0) {
		int e;
		close(ep[0]);
		signal(SIGPIPE, SIG_DFL);
		/* The agent killed before this line leaves no one to wait for. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
			_exit(127);
		execvp(v[0], v);
		e = errno;
		(void)!write(ep[1], &e, sizeof(e));
		_exit(127);
	}
	close(ep[1]);
	ep[1] = -1;
	do {
		got = read(ep[0], &child_errno, sizeof(child_errno));
	} while (got < 0 && errno == EINTR);
	if (got == (ssize_t)sizeof(child_errno)) {
		/* Our signal handlers do not restart calls: a SIGTERM here must not
		 * leave the child unreaped. */
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			continue;
		*pid = -1;
		rc = hc_err_set(err, HC_EUSAGE, "stream: cannot run '%s': %s", v[0],
		                strerror(child_errno));
	}
done:
	if (ep[0] >= 0)
		close(ep[0]);
	if (ep[1] >= 0)
		close(ep[1]);
	free_argv(v, argc);
	return rc;
}

/* Waits for the child, forwarding a stop signal. Returns its status as
 * "<n>" would read (exit code, or 128 + signal). Sets *stopped when the
 * child ended because we forwarded a signal. Undemotes the body once the
 * stream has outlived the launch window. */
static int
supervise(const struct disc_config *cfg, pid_t pid, int64_t start,
          const char *node_id, int *stopped)
{
	int64_t window_end = start + (int64_t)cfg->launch_window_s * 1000;
	int64_t kill_at = 0;
	int forwarded = 0, stable = 0, status = 0;
	struct hc_err lerr = { 0, "" };

	*stopped = 0;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		int64_t now = hc_now_ms(), deadline;

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			status = 0;
			break;
		}
		if (stream_stop_sig != 0 && !forwarded) {
			hc_log(HC_LOG_INFO, "discovery", "stopMoonlight: received %s",
			       sig_name(stream_stop_sig));
			/* A hangup is our stop, not the child's: it gets the usual
			 * stop request. */
			kill(pid, stream_stop_sig == SIGHUP ? SIGTERM : stream_stop_sig);
			forwarded = 1;
			*stopped = 1;
			kill_at = now + DISC_STOP_GRACE_MS;
		}
		if (forwarded && now >= kill_at) {
			hc_log(HC_LOG_WARN, "discovery",
			       "stream process %ld ignored the stop for %d ms, killing it",
			       (long)pid, DISC_STOP_GRACE_MS);
			kill(pid, SIGKILL);
			kill_at = now + DISC_STOP_GRACE_MS;
		}
		if (!stable && now >= window_end) {
			stable = 1;
			hc_log(HC_LOG_INFO, "discovery",
			       "stream on body %s outlived the %d s launch window", node_id,
			       cfg->launch_window_s);
			if (disc_undemote(cfg->state_dir, node_id, &lerr) != 0)
				hc_log(HC_LOG_WARN, "discovery", "%s", lerr.msg);
		}
		deadline = forwarded ? kill_at : (stable ? now + 60000 : window_end);
		wait_until(deadline);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 0;
}

/* What the supervisor changes in the process, put back on the way out. */
struct saved_signals {
	struct sigaction term, intr, hup, chld, pipe;
};

static int
install(struct saved_signals *s, struct hc_err *err)
{
	struct sigaction sa;

	if (pipe2(stream_wake, O_CLOEXEC | O_NONBLOCK) != 0)
		return hc_err_set(err, HC_ESOFTWARE, "pipe: %s", strerror(errno));
	stream_stop_sig = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = stream_on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGTERM, &sa, &s->term);
	sigaction(SIGINT, &sa, &s->intr);
	sigaction(SIGHUP, &sa, &s->hup);
	sigaction(SIGCHLD, &sa, &s->chld);
	/* The wake pipe is ours; a closed terminal must not kill the supervisor. */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &s->pipe);
	return 0;
}

static void
uninstall(const struct saved_signals *s)
{
	sigaction(SIGTERM, &s->term, NULL);
	sigaction(SIGINT, &s->intr, NULL);
	sigaction(SIGHUP, &s->hup, NULL);
	sigaction(SIGCHLD, &s->chld, NULL);
	sigaction(SIGPIPE, &s->pipe, NULL);
	close(stream_wake[0]);
	close(stream_wake[1]);
	stream_wake[0] = stream_wake[1] = -1;
}

/* After a launch failure: invalidate (always logged) and demote. */
static void
launch_failed(const struct disc_config *cfg, const struct disc_choice *ch, int status,
              double secs)
{
	char reason[DISC_REASON_MAX];
	struct hc_err lerr = { 0, "" };
	int had = 0;

	hc_snprintf(reason, sizeof(reason),
	            "stream launch failed: status %d after %.1fs (within the %d s launch window)",
	            status, secs, cfg->launch_window_s);
	if (disc_cache_invalidate(cfg->state_dir, reason, &had, &lerr) != 0)
		hc_log(HC_LOG_WARN, "discovery", "%s", lerr.msg);
	if (!had)
		hc_log(HC_LOG_INFO, "discovery", "cached body %s invalidated: %s",
		       ch->body.node_id, reason);
	if (disc_demote(cfg->state_dir, ch->body.node_id, &lerr) != 0)
		hc_log(HC_LOG_WARN, "discovery", "%s", lerr.msg);
}

/* Runs CMD once on the chosen body and supervises it. Returns 1 when the
 * stream is over (*rc is the result), 0 when a relaunch may follow (*rc and
 * err say why this one failed). */
static int
stream_attempt(const struct disc_config *cfg, const struct disc_choice *ch, int argc,
               char *const *argv, int *attempts, int *rc, struct hc_err *err)
{
	pid_t pid = -1;
	int64_t start;
	int status, stopped;
	double secs;

	hc_log(HC_LOG_INFO, "discovery", "launching %s for body %s at %s", argv[0],
	       ch->body.node_id, ch->ip);
	start = hc_now_ms();
	*rc = launch(argc, argv, ch->ip, &pid, err);
	if (*rc != 0)
		return 1;
	(*attempts)++;
	status = supervise(cfg, pid, start, ch->body.node_id, &stopped);
	secs = (double)(hc_now_ms() - start) / 1000.0;
	hc_log(HC_LOG_INFO, "discovery", "Moonlight subprocess exited: status %d after %.1fs",
	       status, secs);
	if (stopped) {
		*rc = 0;
		return 1;
	}
	if (secs >= cfg->launch_window_s) {
		*rc = status == 0 ? 0 :
		      hc_err_set(err, HC_EUNAVAIL, "stream on body %s ended with status %d",
		                 ch->body.node_id, status);
		return 1;
	}
	launch_failed(cfg, ch, status, secs);
	*rc = hc_err_set(err, HC_EUNAVAIL,
	                 "stream: %d launch attempts failed, the last on body %s "
	                 "(status %d after %.1fs)", *attempts, ch->body.node_id,
	                 status, secs);
	return 0;
}

int
disc_stream(const struct disc_config *cfg_in, int max_attempts, int argc,
            char *const *argv, struct hc_err *err)
{
	struct disc_config cfg = *cfg_in;
	struct disc_choice *ch = NULL;
	struct saved_signals saved;
	char prev_ip[DISC_IP_MAX] = "";
	int64_t backoff = DISC_BACKOFF_BASE_MS;
	int attempts = 0;
	int rc;

	if (argc < 1 || argv[0] == NULL)
		return hc_err_set(err, HC_EUSAGE, "stream: no command given");
	if (max_attempts < 1)
		return hc_err_set(err, HC_EUSAGE, "stream: --max-attempts must be at least 1");
	ch = malloc(sizeof(*ch));
	if (ch == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = install(&saved, err);
	if (rc != 0) {
		free(ch);
		return rc;
	}
	cfg.cancel = &stream_stop_sig;
	for (;;) {
		if (stream_stop_sig != 0) {
			hc_log(HC_LOG_INFO, "discovery", "stopMoonlight: received %s, no stream running",
			       sig_name(stream_stop_sig));
			rc = 0;
			break;
		}
		rc = disc_discover(&cfg, 1, ch, err);
		if (rc == 0) {
			if (prev_ip[0] != '\0' && strcmp(prev_ip, ch->ip) != 0)
				hc_log(HC_LOG_INFO, "discovery", "stream target changed: %s -> %s",
				       prev_ip, ch->ip);
			hc_strlcpy(prev_ip, ch->ip, sizeof(prev_ip));
			if (stream_attempt(&cfg, ch, argc, argv, &attempts, &rc, err))
				break;
		} else if (stream_stop_sig == 0) {
			if (rc != HC_EUNAVAIL)
				break;
			attempts++;
			hc_log(HC_LOG_WARN, "discovery", "stream: discovery failed: %s", err->msg);
		}
		if (stream_stop_sig != 0)
			continue;
		if (attempts >= max_attempts)
			break;
		hc_log(HC_LOG_INFO, "discovery", "stream: retrying in %lld ms (attempt %d of %d)",
		       (long long)backoff, attempts + 1, max_attempts);
		sleep_until(hc_now_ms() + backoff);
		backoff = backoff * 2 > DISC_BACKOFF_MAX_MS ? DISC_BACKOFF_MAX_MS : backoff * 2;
	}
	uninstall(&saved);
	free(ch);
	return rc;
}
