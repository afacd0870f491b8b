/*
 * The progress bar of install and sync on stderr: one line fitted to the
 * terminal (at most COLUMNS-1 wide, so it never wraps; the source host is
 * shortened first), redrawn on SIGWINCH, erased around every log line that
 * goes to stderr and drawn again below it.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "mirrorfetch/internal.h"

/* Redraws at most this often, unless forced. */
#define BAR_PERIOD_MS 100
/* Wider terminals are treated as this wide: the line has no more to say. */
#define BAR_COLUMNS_MAX (MF_BAR_MAX - 1)
/* What a shortened host ends with. */
#define BAR_CUT ".."
/* Back to the start of the line, then clear to its end. */
#define BAR_ERASE "\r\033[K"

static volatile sig_atomic_t bar_resized;
static struct sigaction bar_old_winch;

static void
bar_on_winch(int sig)
{
	(void)sig;
	bar_resized = 1;
}

/* Columns the line may use: the terminal's less one, else COLUMNS less one,
 * else (not a terminal) the whole line. */
static size_t
bar_width(void)
{
	struct winsize ws;
	const char *env;
	long long cols;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		return ws.ws_col - 1 < BAR_COLUMNS_MAX ? ws.ws_col - 1 : BAR_COLUMNS_MAX;
	env = getenv("COLUMNS");
	if (env != NULL && hc_parse_int(env, 2, BAR_COLUMNS_MAX + 1, &cols) == 0)
		return (size_t)cols - 1;
	return BAR_COLUMNS_MAX;
}

void
mf_bar_fit(const char *left, const char *tail, size_t width, char *out, size_t size)
{
	size_t l = strlen(left), t = strlen(tail), keep;

	if (size == 0)
		return;
	if (width >= size)
		width = size - 1;
	if (t == 0 && l <= width) {
		(void)hc_snprintf(out, size, "%s", left);
		return;
	}
	if (l + 2 + t <= width) {
		(void)hc_snprintf(out, size, "%s  %s", left, tail);
		return;
	}
	/* The host gives way first, down to one character and the cut mark. */
	if (t > 0 && l + 2 + 1 + strlen(BAR_CUT) <= width) {
		keep = width - l - 2 - strlen(BAR_CUT);
		(void)hc_snprintf(out, size, "%s  %.*s" BAR_CUT, left, (int)keep, tail);
		return;
	}
	(void)hc_snprintf(out, size, "%.*s", (int)(l < width ? l : width), left);
}

/* Writes the bar. Called with b->mu held. */
static void
bar_show(struct mf_bar *b)
{
	char line[MF_BAR_MAX + sizeof(BAR_ERASE)];

	if (hc_snprintf(line, sizeof(line), "\r%s\033[K", b->text) != 0)
		return;
	(void)hc_write_all(STDERR_FILENO, line, strlen(line));
	b->shown = 1;
}

static void
bar_log_hook(int before, void *ctx)
{
	struct mf_bar *b = ctx;

	if (before) {
		pthread_mutex_lock(&b->mu);
		if (b->shown)
			(void)hc_write_all(STDERR_FILENO, BAR_ERASE, strlen(BAR_ERASE));
		return;
	}
	if (b->shown)
		bar_show(b);
	pthread_mutex_unlock(&b->mu);
}

void
mf_bar_begin(struct mf_bar *b)
{
	struct sigaction sa;

	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->mu, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bar_on_winch;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	bar_resized = 0;
	(void)sigaction(SIGWINCH, &sa, &bar_old_winch);
	hc_log_set_stderr_hook(bar_log_hook, b);
	b->active = 1;
}

void
mf_bar_draw(struct mf_bar *b, const char *left, const char *tail, int force)
{
	int64_t now = hc_now_ms();

	if (!b->active)
		return;
	pthread_mutex_lock(&b->mu);
	if (bar_resized) {
		bar_resized = 0;
		force = 1;
	}
	if (force || now - b->last_ms >= BAR_PERIOD_MS) {
		b->last_ms = now;
		mf_bar_fit(left, tail, bar_width(), b->text, sizeof(b->text));
		bar_show(b);
	}
	pthread_mutex_unlock(&b->mu);
}

void
mf_bar_end(struct mf_bar *b)
{
	if (!b->active)
		return;
	hc_log_set_stderr_hook(NULL, NULL);
	(void)sigaction(SIGWINCH, &bar_old_winch, NULL);
	if (b->shown)
		(void)hc_write_all(STDERR_FILENO, "\n", 1);
	pthread_mutex_destroy(&b->mu);
	b->active = 0;
	b->shown = 0;
}
