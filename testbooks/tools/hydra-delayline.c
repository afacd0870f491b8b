/*
 * hydra-delayline: real round trips for tests on a kernel without netem.
 *
 *   hydra-delayline --ns-a NS --dev-a NAME --ns-b NS --dev-b NAME
 *                   [--delay IPV4=MS]... [--duration S]
 *
 * Creates TUN device dev-a in network namespace ns-a and dev-b in ns-b
 * (both named in /run/netns), prints "ready", and then forwards every IP
 * packet read from one to the other. A packet from A to an IPv4 address
 * given with --delay is held that many milliseconds first; everything else
 * (the way back included) passes at once. So a TCP connect from ns-a to
 * such an address sees a round trip of MS plus a little: every handshake,
 * measured by the kernel, not by a stand-in.
 *
 * The caller gives the devices addresses and routes (ip -n NS ...). Bounded:
 * at most DL_QUEUE_MAX packets held (more are dropped and counted), at most
 * --duration seconds (default 600), SIGTERM or SIGINT end it. Prints
 * "forwarded N, delayed N, dropped N" at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/hc.h"

/* Packets held at once: a test's handshakes and small requests. */
#define DL_QUEUE_MAX 1024
/* Largest packet: the devices keep the default MTU of 1500. */
#define DL_PACKET_MAX 2048
/* Addresses with a delay. */
#define DL_DELAYS_MAX 64
/* A delay above a minute is a mistake, not a network. */
#define DL_DELAY_MAX_MS 60000
#define DL_DURATION_MAX_S 3600

struct dl_packet {
	int64_t due_us;      /* microseconds: a millisecond clock could hold a
	                        5 ms packet for only 4.1 */
	int to;              /* fd to write it to */
	size_t len;
	unsigned char data[DL_PACKET_MAX];
};

struct dl_delay {
	struct in_addr addr;
	int ms;
};

static volatile sig_atomic_t dl_stop;

static void
dl_on_signal(int sig)
{
	(void)sig;
	dl_stop = 1;
}

/* Opens TUN device name inside namespace ns (a name under /run/netns), then
 * returns to the namespace we started in. The fd keeps working there. */
static int
dl_open_tun(const char *ns, const char *name)
{
	char path[256];
	struct ifreq ifr;
	int self = -1, other = -1, fd = -1;

	if (hc_snprintf(path, sizeof(path), "/run/netns/%s", ns) != 0 ||
	    strlen(name) >= IFNAMSIZ) {
		fprintf(stderr, "hydra-delayline: name too long: %s / %s\n", ns, name);
		return -1;
	}
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	other = open(path, O_RDONLY | O_CLOEXEC);
	if (self < 0 || other < 0 || setns(other, CLONE_NEWNET) != 0) {
		fprintf(stderr, "hydra-delayline: enter %s: %s\n", path, strerror(errno));
		goto done;
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	memcpy(ifr.ifr_name, name, strlen(name));
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) != 0) {
		fprintf(stderr, "hydra-delayline: tun %s in %s: %s\n", name, ns, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	if (setns(self, CLONE_NEWNET) != 0) {
		fprintf(stderr, "hydra-delayline: back to our namespace: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
done:
	if (self >= 0)
		close(self);
	if (other >= 0)
		close(other);
	return fd;
}

/* "10.77.2.5=40" into d. 0 or -1. */
static int
dl_parse_delay(const char *arg, struct dl_delay *d)
{
	char ip[INET_ADDRSTRLEN];
	const char *eq = strchr(arg, '=');
	long long ms;

	if (eq == NULL || (size_t)(eq - arg) >= sizeof(ip))
		return -1;
	memcpy(ip, arg, (size_t)(eq - arg));
	ip[eq - arg] = '\0';
	if (inet_pton(AF_INET, ip, &d->addr) != 1 ||
	    hc_parse_int(eq + 1, 0, DL_DELAY_MAX_MS, &ms) != 0)
		return -1;
	d->ms = (int)ms;
	return 0;
}

/* The delay for a packet from A: by its IPv4 destination, else 0. */
static int
dl_delay_of(const unsigned char *p, size_t len, const struct dl_delay *d, size_t n)
{
	struct in_addr dst;
	size_t i;

	if (len < 20 || (p[0] >> 4) != 4)
		return 0;
	memcpy(&dst, p + 16, sizeof(dst));
	for (i = 0; i < n; i++) {
		if (d[i].addr.s_addr == dst.s_addr)
			return d[i].ms;
	}
	return 0;
}

struct dl_state {
	int fd_a, fd_b;
	struct dl_delay delays[DL_DELAYS_MAX];
	size_t ndelays;
	struct dl_packet *queue;   /* DL_QUEUE_MAX slots; len 0 = free */
	unsigned long forwarded, delayed, dropped;
};

/* The first free slot of the queue, DL_QUEUE_MAX when it is full. */
static size_t
dl_free_slot(const struct dl_state *s)
{
	size_t i;

	for (i = 0; i < DL_QUEUE_MAX; i++) {
		if (s->queue[i].len == 0)
			break;
	}
	return i;
}

/* Reads what from has (bounded by the queue) and queues it for to. */
static void
dl_read(struct dl_state *s, int from, int to)
{
	unsigned char buf[DL_PACKET_MAX];
	size_t i, reads;
	ssize_t n;
	int ms;

	for (reads = 0; reads < DL_QUEUE_MAX; reads++) {
		n = read(from, buf, sizeof(buf));
		if (n <= 0)
			return;
		ms = from == s->fd_a ? dl_delay_of(buf, (size_t)n, s->delays, s->ndelays) : 0;
		i = dl_free_slot(s);
		if (i == DL_QUEUE_MAX) {
			s->dropped++;
			continue;
		}
		s->queue[i].due_us = hc_now_us() + (int64_t)ms * 1000;
		s->queue[i].to = to;
		s->queue[i].len = (size_t)n;
		memcpy(s->queue[i].data, buf, (size_t)n);
		if (ms > 0)
			s->delayed++;
	}
}

/* Writes every packet that is due; returns ms until the next one, rounded
 * up (or -1). */
static int
dl_flush(struct dl_state *s)
{
	int64_t now = hc_now_us(), next = -1;
	size_t i;

	for (i = 0; i < DL_QUEUE_MAX; i++) {
		struct dl_packet *p = &s->queue[i];

		if (p->len == 0)
			continue;
		if (p->due_us <= now) {
			if (write(p->to, p->data, p->len) < 0)
				s->dropped++;
			else
				s->forwarded++;
			p->len = 0;
			continue;
		}
		if (next < 0 || p->due_us - now < next)
			next = p->due_us - now;
	}
	return next < 0 ? -1 : (int)((next + 999) / 1000);
}

/* Forwards until a signal or duration_s seconds have passed. */
static void
dl_run(struct dl_state *s, long long duration_s)
{
	int64_t end = hc_now_ms() + duration_s * 1000;
	int wait;

	while (!dl_stop && hc_now_ms() < end) {
		struct pollfd p[2] = { { s->fd_a, POLLIN, 0 }, { s->fd_b, POLLIN, 0 } };

		wait = dl_flush(s);
		if (wait < 0 || wait > 100)
			wait = 100;  /* look at the clock and the signals */
		if (poll(p, 2, wait) < 0 && errno != EINTR)
			return;
		if (p[0].revents & POLLIN)
			dl_read(s, s->fd_a, s->fd_b);
		if (p[1].revents & POLLIN)
			dl_read(s, s->fd_b, s->fd_a);
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ns-a", required_argument, NULL, 'a' },
		{ "dev-a", required_argument, NULL, 'A' },
		{ "ns-b", required_argument, NULL, 'b' },
		{ "dev-b", required_argument, NULL, 'B' },
		{ "delay", required_argument, NULL, 'd' },
		{ "duration", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *ns_a = NULL, *dev_a = NULL, *ns_b = NULL, *dev_b = NULL;
	struct dl_state s;
	long long duration = 600;
	int opt;

	memset(&s, 0, sizeof(s));
	for (;;) {
		opt = getopt_long(argc, argv, "", opts, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 'a': ns_a = optarg; break;
		case 'A': dev_a = optarg; break;
		case 'b': ns_b = optarg; break;
		case 'B': dev_b = optarg; break;
		case 'd':
			if (s.ndelays == DL_DELAYS_MAX ||
			    dl_parse_delay(optarg, &s.delays[s.ndelays]) != 0) {
				fprintf(stderr, "hydra-delayline: --delay %s: want IPV4=MS (0 to %d), "
				        "at most %d\n", optarg, DL_DELAY_MAX_MS, DL_DELAYS_MAX);
				return 64;
			}
			s.ndelays++;
			break;
		case 't':
			if (hc_parse_int(optarg, 1, DL_DURATION_MAX_S, &duration) != 0) {
				fprintf(stderr, "hydra-delayline: --duration: 1 to %d s\n",
				        DL_DURATION_MAX_S);
				return 64;
			}
			break;
		default:
			return 64;
		}
	}
	if (ns_a == NULL || dev_a == NULL || ns_b == NULL || dev_b == NULL || optind != argc) {
		fprintf(stderr, "usage: hydra-delayline --ns-a NS --dev-a NAME --ns-b NS "
		        "--dev-b NAME [--delay IPV4=MS]... [--duration S]\n");
		return 64;
	}
	s.queue = calloc(DL_QUEUE_MAX, sizeof(*s.queue));
	if (s.queue == NULL)
		return 71;
	s.fd_a = dl_open_tun(ns_a, dev_a);
	s.fd_b = s.fd_a >= 0 ? dl_open_tun(ns_b, dev_b) : -1;
	if (s.fd_a < 0 || s.fd_b < 0)
		return 69;
	signal(SIGTERM, dl_on_signal);
	signal(SIGINT, dl_on_signal);
	printf("ready\n");
	fflush(stdout);
	dl_run(&s, duration);
	printf("forwarded %lu, delayed %lu, dropped %lu\n", s.forwarded, s.delayed, s.dropped);
	close(s.fd_a);
	close(s.fd_b);
	free(s.queue);
	return 0;
}
