/*
 * Logging: `2026-11-22T18:32:00.123Z INFO module: message`, UTC, one write(2)
 * per line on an O_APPEND descriptor so that processes sharing hydrabody.log
 * never interleave inside a line. When stderr is systemd's journal stream
 * (JOURNAL_STREAM names its device and inode), stderr lines start with an
 * sd-daemon priority prefix (`<6>INFO module: message`) in place of the
 * timestamp the journal adds itself, so `journalctl -p warning` works.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/hc.h"

static struct {
	int fd;
	int to_stderr;
	int journal;                   /* stderr is the journal: priority prefixes */
	enum hc_log_level level;
} log_state = { -1, 1, 0, HC_LOG_INFO };

/* The stderr hook; the lock also keeps a hook's before and after around
 * one line, and a removal from happening mid-line. */
static pthread_mutex_t log_hook_mu = PTHREAD_MUTEX_INITIALIZER;
static hc_log_stderr_hook log_hook;
static void *log_hook_ctx;

static const char *const log_level_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };
/* sd-daemon(3) priorities of the levels above: debug, info, warning, err. */
static const char *const log_journal_prefix[] = { "<7>", "<6>", "<4>", "<3>" };
/* `2026-11-22T18:32:00.123Z `: what the journal replaces with its own time. */
#define LOG_STAMP_LEN 25

/* 1 when JOURNAL_STREAM ("device:inode") names the file stderr is, as
 * systemd.exec(5) asks: a child whose stderr was redirected keeps plain lines. */
static int
log_stderr_is_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	uint64_t dev, ino;
	struct stat st;

	if (v == NULL || hc_scan_u64(&v, &dev) != 0 || hc_scan_sep(&v, ':') != 0 ||
	    hc_scan_u64(&v, &ino) != 0 || *v != '\0')
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

int
hc_log_open(const char *path, enum hc_log_level level, int to_stderr,
            struct hc_err *err)
{
	struct stat st;
	int fd = -1;

	if (path != NULL && *path != '\0') {
		/* A link planted at the log path would aim our appends at any file
		 * we may write; a FIFO would block the open and then every line. */
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
		          O_NONBLOCK, 0644);
		if (fd < 0 && errno == ELOOP)
			return hc_err_set(err, HC_ECANTCREAT, "log_file %s: is a symbolic link",
			                  path);
		if (fd < 0 && errno == ENXIO)
			return hc_err_set(err, HC_ECANTCREAT,
			                  "log_file %s: not a regular file or a device", path);
		if (fd < 0)
			return hc_err_set(err, HC_ECANTCREAT, "log_file %s: %s", path,
			                  strerror(errno));
		if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
			close(fd);
			return hc_err_set(err, HC_ECANTCREAT,
			                  "log_file %s: not a regular file or a device", path);
		}
		/* Lines are written whole: no EAGAIN on a terminal or device. */
		if (fcntl(fd, F_SETFL, O_APPEND) != 0) {
			close(fd);
			return hc_err_set(err, HC_ECANTCREAT, "log_file %s: %s", path,
			                  strerror(errno));
		}
	}
	hc_log_close();
	log_state.fd = fd;
	log_state.level = level;
	log_state.to_stderr = to_stderr;
	log_state.journal = to_stderr && log_stderr_is_journal();
	return 0;
}

void
hc_log_close(void)
{
	if (log_state.fd >= 0)
		close(log_state.fd);
	log_state.fd = -1;
}

int
hc_log_level_parse(const char *s, enum hc_log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (strcasecmp(s, log_level_names[i]) == 0) {
			*out = (enum hc_log_level)i;
			return 0;
		}
	}
	return HC_EDATA;
}

size_t
hc_log_format(char *buf, size_t size, int64_t epoch_ms, enum hc_log_level level,
              const char *module, const char *fmt, va_list ap)
{
	struct tm tm;
	time_t secs = (time_t)(epoch_ms / 1000);
	size_t room, len, i;
	int cut = 0;
	int n;

	if (size < 8) {
		if (size > 0)
			buf[0] = '\0';
		return 0;
	}
	/* Text goes into room bytes, leaving one for '\n' and one for NUL. */
	room = size - 2;
	gmtime_r(&secs, &tm);
	n = snprintf(buf, room + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	             tm.tm_min, tm.tm_sec, (int)(epoch_ms % 1000),
	             log_level_names[level], module);
	len = n < 0 ? 0 : (size_t)n;
	if (len < room) {
		n = vsnprintf(buf + len, room + 1 - len, fmt, ap);
		if (n > 0)
			len += (size_t)n;
	}
	if (len > room) {
		len = room;
		cut = 1;
	}
	/* One line per record: an embedded newline would forge a log line. */
	for (i = 0; i < len; i++) {
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	}
	if (cut)
		memcpy(buf + len - 3, "...", 3);
	buf[len++] = '\n';
	buf[len] = '\0';
	return len;
}

void
hc_vlog(enum hc_log_level level, const char *module, const char *fmt, va_list ap)
{
	char line[HC_LOG_LINE_MAX];
	struct timespec ts;
	size_t len;

	if (level < log_state.level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	len = hc_log_format(line, sizeof(line),
	                    (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
	                    level, module, fmt, ap);
	/* Logging must never fail the caller: errors here have nowhere to go. */
	if (log_state.fd >= 0)
		(void)hc_write_all(log_state.fd, line, len);
	if (log_state.to_stderr) {
		pthread_mutex_lock(&log_hook_mu);
		if (log_hook != NULL)
			log_hook(1, log_hook_ctx);
		if (log_state.journal && len > LOG_STAMP_LEN) {
			/* The prefix overwrites the tail of the stamp: still one write. */
			memcpy(line + LOG_STAMP_LEN - 3, log_journal_prefix[level], 3);
			(void)hc_write_all(STDERR_FILENO, line + LOG_STAMP_LEN - 3,
			                   len - (LOG_STAMP_LEN - 3));
		} else {
			(void)hc_write_all(STDERR_FILENO, line, len);
		}
		if (log_hook != NULL)
			log_hook(0, log_hook_ctx);
		pthread_mutex_unlock(&log_hook_mu);
	}
}

void
hc_log_set_stderr_hook(hc_log_stderr_hook fn, void *ctx)
{
	pthread_mutex_lock(&log_hook_mu);
	log_hook = fn;
	log_hook_ctx = ctx;
	pthread_mutex_unlock(&log_hook_mu);
}

void
hc_log(enum hc_log_level level, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hc_vlog(level, module, fmt, ap);
	va_end(ap);
}
