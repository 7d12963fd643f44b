/* bench: HTTP/1.1 and HTTP/2 benchmark client for Comet servers (comet-fcgi, nchan).
 *
 * One thread, epoll, non-blocking sockets, libc only. Talks to a web server on
 * 127.0.0.1:PORT and measures
 *
 *   fanout  N long-poll subscribers are opened (in batches, each batch waited
 *           for with a readiness poll of the server's own subscriber count),
 *           the memory of the given processes is read before and while they
 *           are held, then ONE message is published and the arrival of each
 *           subscriber's complete answer is timed from just before the
 *           publish request is written (t0).
 *   rate    C keep-alive connections POST small messages, one outstanding
 *           request per connection (no pipelining), for D seconds.
 *
 * Every result is printed as a human-readable block and as one JSON line
 * (starting with '{') for scripts.  Every wait is bounded.
 *
 *   bench fanout -p PORT -n 1000 [--preset comet|nchan] [--mem server:PID,..]
 *   bench rate   -p PORT [-c 16] [-d 5] [--pub-path PATH]
 *
 * With --peer PORT (other servers sharing the channels: hosts of one site),
 * fanout opens N subscribers on each server, publishes to -p and reports the
 * latencies also by server; rate's connections alternate the servers.
 * --pub-batch K makes each rate request a comet-fcgi batch of K messages;
 * --pusher ID:KEY:SECRET publishes through the Pusher HTTP API instead.
 *
 * Run "bench --help" for every option.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* ------------------------------------------------------------------ utils */

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct samples {
	double *v;
	size_t n, cap;
};

static void samples_add(struct samples *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples; NAN when there are none. */
static double pct(const struct samples *s, double p)
{
	if (s->n == 0)
		return NAN;
	size_t k = (size_t)ceil(p / 100.0 * (double)s->n);
	if (k < 1)
		k = 1;
	if (k > s->n)
		k = s->n;
	return s->v[k - 1];
}

/* JSON number or null. */
static void jnum(FILE *f, const char *key, double x, int prec, bool comma)
{
	if (isnan(x))
		fprintf(f, "\"%s\":null", key);
	else
		fprintf(f, "\"%s\":%.*f", key, prec, x);
	if (comma)
		fputc(',', f);
}

static void jstr(FILE *f, const char *key, const char *s, bool comma)
{
	fprintf(f, "\"%s\":\"", key);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
	if (comma)
		fputc(',', f);
}

/* ---------------------------------------------------------------- options */

static struct {
	const char *mode;
	const char *label;		/* what is measured, for the JSON lines */
	const char *host;
	int port;
	long n;
	int conns;
	double duration;
	const char *sub_path, *pub_path, *fanout_pub_path, *ready_path, *ready_key;
	const char *headers;		/* extra request headers (pub and ready) */
	int body_size;
	int batch;
	double ready_timeout;		/* without progress */
	double answer_timeout;
	double rate_while_held;		/* fanout: a rate run while N are held */
	const char *rate_pub_path;
	int h2;				/* fanout: subscribers as HTTP/2 streams, h2 per connection */
	int h2_port;			/* their port (default: port) */
	bool check;			/* fanout: an answer must carry the message */
	bool quiet;
	int pub_batch;			/* rate: messages per request, a JSON array (0: one, plain) */
	const char *batch_channel;	/* their channel */
	char *pusher_id, *pusher_key, *pusher_secret;	/* rate: Pusher HTTP API */
	int rounds;			/* herd: publishes, each answered and asked again */
	bool fresh;			/* herd: every request on a new connection */
	bool sse;			/* fanout: subscribers are event streams */
	const char *form_topic;		/* fanout: publish as a Mercure form with this topic */
	char *sse_mark;			/* ... answered once this text came */
} opt = {
	.rounds = 3,
	.batch_channel = "rate",
	.label = "server",
	.host = "127.0.0.1",
	.n = 100,
	.conns = 16,
	.duration = 5,
	.body_size = 32,
	.batch = 500,
	.ready_timeout = 20,
	.answer_timeout = 30,
};

/* Memory groups: label + pids. */
#define MAX_GROUPS 8
#define MAX_PIDS 64
struct memgroup {
	char label[32];
	int pids[MAX_PIDS];
	int npids;
	/* readings: [0] before, [1] held; values in bytes */
	long long rss[2], pss[2], priv[2], anon[2];
};
static struct memgroup groups[MAX_GROUPS];
static int ngroups;
static long match_sid = -1;

static struct memgroup *group(const char *label, size_t len)
{
	for (int i = 0; i < ngroups; i++)
		if (strlen(groups[i].label) == len && strncmp(groups[i].label, label, len) == 0)
			return &groups[i];
	if (ngroups == MAX_GROUPS)
		die("too many memory groups");
	struct memgroup *g = &groups[ngroups++];
	memset(g, 0, sizeof *g);
	snprintf(g->label, sizeof g->label, "%.*s", (int)len, label);
	return g;
}

static void group_add_pid(struct memgroup *g, int pid)
{
	for (int i = 0; i < g->npids; i++)
		if (g->pids[i] == pid)
			return;
	if (g->npids == MAX_PIDS)
		die("too many pids in group %s", g->label);
	g->pids[g->npids++] = pid;
}

/* "label:1,2,3" */
static void parse_mem_pids(const char *arg)
{
	const char *colon = strchr(arg, ':');
	if (!colon)
		die("--mem wants LABEL:PID[,PID...], got %s", arg);
	struct memgroup *g = group(arg, (size_t)(colon - arg));
	for (const char *p = colon + 1; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p || pid <= 0)
			die("--mem: bad pid list %s", arg);
		group_add_pid(g, (int)pid);
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			die("--mem: bad pid list %s", arg);
	}
}

static bool proc_session(int pid, long *sid, char *comm, size_t commlen)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *open = strchr(buf, '('), *close = strrchr(buf, ')');
	if (!open || !close || close < open)
		return false;
	snprintf(comm, commlen, "%.*s", (int)(close - open - 1), open + 1);
	char state;
	int ppid, pgrp;
	long s;
	if (sscanf(close + 2, "%c %d %d %ld", &state, &ppid, &pgrp, &s) != 4)
		return false;
	*sid = s;
	return state != 'Z';
}

/* "label:name,name": every process whose comm is one of the names (and, with
 * --sid, that belongs to that session). */
static void parse_mem_match(const char *arg)
{
	const char *colon = strchr(arg, ':');
	if (!colon)
		die("--mem-match wants LABEL:NAME[,NAME...], got %s", arg);
	struct memgroup *g = group(arg, (size_t)(colon - arg));
	DIR *d = opendir("/proc");
	if (!d)
		die("/proc: %s", strerror(errno));
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		int pid = atoi(e->d_name);
		long sid;
		char comm[64];
		if (!proc_session(pid, &sid, comm, sizeof comm))
			continue;
		if (match_sid >= 0 && sid != match_sid)
			continue;
		for (const char *p = colon + 1; *p;) {
			const char *end = strchr(p, ',');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			if (strlen(comm) == len && strncmp(comm, p, len) == 0)
				group_add_pid(g, pid);
			p += len + (end ? 1 : 0);
		}
	}
	closedir(d);
	if (g->npids == 0)
		fprintf(stderr, "bench: warning: --mem-match %s found no process\n", arg);
}

static long long kv_kb(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[256];
	size_t kl = strlen(key);
	long long v = -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtoll(line + kl + 1, NULL, 10) * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

static void mem_read(int slot)
{
	for (int i = 0; i < ngroups; i++) {
		struct memgroup *g = &groups[i];
		g->rss[slot] = g->pss[slot] = g->priv[slot] = g->anon[slot] = 0;
		for (int j = 0; j < g->npids; j++) {
			char st[64], sm[64];
			snprintf(st, sizeof st, "/proc/%d/status", g->pids[j]);
			snprintf(sm, sizeof sm, "/proc/%d/smaps_rollup", g->pids[j]);
			long long rss = kv_kb(st, "VmRSS");
			long long pss = kv_kb(sm, "Pss");
			long long pc = kv_kb(sm, "Private_Clean");
			long long pd = kv_kb(sm, "Private_Dirty");
			long long an = kv_kb(sm, "Anonymous");
			if (rss < 0 || pss < 0 || pc < 0 || pd < 0)
				fprintf(stderr, "bench: warning: cannot read memory of pid %d (%s)\n",
					g->pids[j], g->label);
			g->rss[slot] += rss > 0 ? rss : 0;
			g->pss[slot] += pss > 0 ? pss : 0;
			g->priv[slot] += (pc > 0 ? pc : 0) + (pd > 0 ? pd : 0);
			g->anon[slot] += an > 0 ? an : 0;
		}
	}
}

/* CPU time (ns) used so far by a group: every thread of every process
 * (/proc/PID/task/TID/schedstat, first field). */
static long long group_cpu_ns(const struct memgroup *g)
{
	long long total = 0;
	for (int j = 0; j < g->npids; j++) {
		char dir[64];
		snprintf(dir, sizeof dir, "/proc/%d/task", g->pids[j]);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!isdigit((unsigned char)e->d_name[0]))
				continue;
			char path[400];
			snprintf(path, sizeof path, "%s/%s/schedstat", dir, e->d_name);
			FILE *f = fopen(path, "r");
			if (!f)
				continue;
			long long ns;
			if (fscanf(f, "%lld", &ns) == 1)
				total += ns;
			fclose(f);
		}
		closedir(d);
	}
	return total;
}

static long long self_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* cpu[g] for every group, cpu[ngroups] for this program. */
static void cpu_read(long long *cpu)
{
	for (int i = 0; i < ngroups; i++)
		cpu[i] = group_cpu_ns(&groups[i]);
	cpu[ngroups] = self_cpu_ns();
}

/* ,"cpu":{"label":ms,...,"bench":ms} and the human form. */
static void cpu_print(FILE *f, bool json, const long long *a, const long long *b, double wall)
{
	if (json) {
		fprintf(f, ",\"cpu_ms\":{");
		for (int i = 0; i < ngroups; i++)
			fprintf(f, "\"%s\":%.1f,", groups[i].label, (b[i] - a[i]) / 1e6);
		fprintf(f, "\"bench\":%.1f}", (b[ngroups] - a[ngroups]) / 1e6);
		return;
	}
	fprintf(f, "   cpu over %.3f s:", wall);
	for (int i = 0; i < ngroups; i++)
		fprintf(f, " %s %.1f ms (%.0f%%),", groups[i].label, (b[i] - a[i]) / 1e6,
			wall > 0 ? (b[i] - a[i]) / 1e7 / wall : 0);
	fprintf(f, " bench %.1f ms (%.0f%%)\n", (b[ngroups] - a[ngroups]) / 1e6,
		wall > 0 ? (b[ngroups] - a[ngroups]) / 1e7 / wall : 0);
}

/* ------------------------------------------------------------ connections */

enum kind { K_SUB, K_PUB, K_READY, K_H2 };
enum state { S_CONNECTING, S_WRITING, S_READING, S_DONE, S_FAILED };

struct hconn {
	int fd;
	enum kind kind;
	enum state state;
	char *req;			/* owned copy of the request */
	size_t reqlen, reqoff;
	char *buf;
	size_t len, cap;
	/* response */
	size_t hdr_end;			/* 0: headers not complete yet */
	int status;
	long long clen;			/* -1: none */
	bool chunked, close_delim, server_close;
	size_t resp_len;		/* bytes of the complete response */
	double t_sent, t_done;
	int err;			/* errno of a failure */
	int id;
	int host;			/* index into targets[]: 0 is -p, then --peer */
	struct h2 *h2;			/* an HTTP/2 stream: its connection (fd -1) */
};

/* The servers: [0] is -p (publishes of a fan-out go there), then each
 * --peer, another server sharing the same channels (multi-host runs). */
#define MAX_HOSTS 4
static struct sockaddr_in targets[MAX_HOSTS], h2_targets[MAX_HOSTS];
static int nhosts = 1;
static int peer_port[MAX_HOSTS], peer_h2_port[MAX_HOSTS];
static int ep = -1;
static char host_hdrs[MAX_HOSTS][128];

static void set_events(struct hconn *c, uint32_t events, int op)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	if (epoll_ctl(ep, op, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void conn_reset_response(struct hconn *c)
{
	c->hdr_end = 0;
	c->status = 0;
	c->clen = -1;
	c->chunked = c->close_delim = c->server_close = false;
	c->resp_len = 0;
}

/* Starts a non-blocking connect; the request is sent when it completes.
 * Returns 0, or -1 with c->err set (c->state S_FAILED). */
static int conn_open(struct hconn *c)
{
	conn_reset_response(c);
	c->len = 0;
	c->reqoff = 0;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->err = errno;
		c->state = S_FAILED;
		return -1;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	const struct sockaddr_in *to = c->kind == K_H2 ? &h2_targets[c->host] : &targets[c->host];
	if (connect(c->fd, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS) {
		c->err = errno;
		close(c->fd);
		c->fd = -1;
		c->state = S_FAILED;
		return -1;
	}
	c->state = S_CONNECTING;
	set_events(c, EPOLLOUT, EPOLL_CTL_ADD);
	return 0;
}

static void conn_close(struct hconn *c)
{
	if (c->fd >= 0) {
		/* No EPOLL_CTL_DEL: the descriptor is never duplicated, so
		 * closing it takes it out of the epoll set. */
		close(c->fd);
		c->fd = -1;
	}
}

static void conn_fail(struct hconn *c, int err)
{
	c->err = err ? err : EPROTO;
	c->state = S_FAILED;
	c->t_done = now_s();
	conn_close(c);
}

static void conn_set_request(struct hconn *c, const char *method, const char *path,
			     const char *ctype, const char *body, size_t bodylen, bool keepalive)
{
	char head[2048];
	int n = snprintf(head, sizeof head,
			 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: comet-bench\r\n%s%s%s",
			 method, path, host_hdrs[c->host], keepalive ? "" : "Connection: close\r\n",
			 (c->kind != K_SUB && opt.headers) ? opt.headers :
			 (c->kind == K_SUB && opt.sse) ? "Accept: text/event-stream" : "",
			 (c->kind != K_SUB && opt.headers) || (c->kind == K_SUB && opt.sse)
			 ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof head)
		die("request head too long");
	if (body) {
		n += snprintf(head + n, sizeof head - (size_t)n,
			      "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, bodylen);
		if ((size_t)n >= sizeof head)
			die("request head too long");
	}
	n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
	free(c->req);
	c->reqlen = (size_t)n + (body ? bodylen : 0);
	c->req = xrealloc(NULL, c->reqlen);
	memcpy(c->req, head, (size_t)n);
	if (body)
		memcpy(c->req + n, body, bodylen);
	c->reqoff = 0;
}

/* Writes what is left of the request; on completion switches to reading. */
static void conn_write(struct hconn *c)
{
	if (c->reqoff == 0)
		c->t_sent = now_s();
	while (c->reqoff < c->reqlen) {
		ssize_t w = send(c->fd, c->req + c->reqoff, c->reqlen - c->reqoff, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (c->state != S_WRITING) {
					c->state = S_WRITING;
					set_events(c, EPOLLOUT, EPOLL_CTL_MOD);
				}
				return;
			}
			conn_fail(c, errno);
			return;
		}
		c->reqoff += (size_t)w;
	}
	c->state = S_READING;
	set_events(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
}

/* Sends a new request on an established keep-alive connection. */
static void conn_send_again(struct hconn *c)
{
	/* Without pipelining nothing follows the answer (checked by the
	 * caller); the next answer starts at the beginning of the buffer. */
	c->len = 0;
	conn_reset_response(c);
	c->reqoff = 0;
	c->state = S_WRITING;
	conn_write(c);
}

static bool header_is(const char *line, size_t len, const char *name, const char **val, size_t *vlen)
{
	size_t nl = strlen(name);
	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return false;
	const char *v = line + nl + 1;
	const char *e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*val = v;
	*vlen = (size_t)(e - v);
	return true;
}

static bool contains_ci(const char *s, size_t n, const char *word)
{
	size_t wl = strlen(word);
	for (size_t i = 0; i + wl <= n; i++)
		if (strncasecmp(s + i, word, wl) == 0)
			return true;
	return false;
}

/* 1: a complete response is in c->buf (c->resp_len bytes); 0: need more;
 * -1: malformed. eof: the peer closed. */
static int parse_response(struct hconn *c, bool eof)
{
	if (!c->hdr_end) {
		char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
		if (!e)
			return eof ? -1 : 0;
		c->hdr_end = (size_t)(e - c->buf) + 4;
		int minor = 1;
		if (sscanf(c->buf, "HTTP/1.%d %d", &minor, &c->status) != 2)
			return -1;
		if (minor == 0)
			c->server_close = true;
		const char *line = memchr(c->buf, '\n', c->hdr_end) + 1;
		while (line < c->buf + c->hdr_end - 2) {
			const char *nl = memchr(line, '\n', (size_t)(c->buf + c->hdr_end - line));
			size_t ll = (size_t)(nl - line);
			if (ll && line[ll - 1] == '\r')
				ll--;
			const char *v;
			size_t vl;
			if (header_is(line, ll, "Content-Length", &v, &vl))
				c->clen = strtoll(v, NULL, 10);
			else if (header_is(line, ll, "Transfer-Encoding", &v, &vl))
				c->chunked = contains_ci(v, vl, "chunked");
			else if (header_is(line, ll, "Connection", &v, &vl)) {
				if (contains_ci(v, vl, "close"))
					c->server_close = true;
				else if (contains_ci(v, vl, "keep-alive"))
					c->server_close = false;
			}
			line = nl + 1;
		}
		if (c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200))
			c->clen = 0;
		if (!c->chunked && c->clen < 0) {
			c->close_delim = true;
			c->server_close = true;
		}
	}
	if (c->chunked) {
		size_t p = c->hdr_end;
		for (;;) {
			char *nl = memmem(c->buf + p, c->len - p, "\r\n", 2);
			if (!nl)
				return eof ? -1 : 0;
			char *end;
			unsigned long long sz = strtoull(c->buf + p, &end, 16);
			if (end == c->buf + p)
				return -1;
			p = (size_t)(nl - c->buf) + 2;
			if (sz == 0) {
				/* trailers until an empty line */
				for (;;) {
					char *t = memmem(c->buf + p, c->len - p, "\r\n", 2);
					if (!t)
						return eof ? -1 : 0;
					size_t tl = (size_t)(t - (c->buf + p));
					p += tl + 2;
					if (tl == 0) {
						c->resp_len = p;
						return 1;
					}
				}
			}
			if (c->len - p < sz + 2)
				return eof ? -1 : 0;
			p += sz + 2;
		}
	}
	if (c->close_delim) {
		if (!eof)
			return 0;
		c->resp_len = c->len;
		return 1;
	}
	if (c->len - c->hdr_end >= (size_t)c->clen) {
		c->resp_len = c->hdr_end + (size_t)c->clen;
		return 1;
	}
	return eof ? -1 : 0;
}

/* Reads what is there. Returns 1 when a response completed (c->t_done set,
 * state S_DONE), 0 when more is needed, -1 on failure (S_FAILED). */
static int conn_read(struct hconn *c)
{
	bool eof = false;
	int rc = 0;
	for (;;) {
		if (c->cap - c->len < 4096) {
			c->cap = c->cap ? c->cap * 2 : 8192;
			c->buf = xrealloc(c->buf, c->cap);
		}
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			int e = errno;
			if (c->len == 0) {
				conn_fail(c, e);
				return -1;
			}
			eof = true;
			break;
		}
		if (r == 0) {
			eof = true;
			break;
		}
		c->len += (size_t)r;
		c->buf[c->len] = 0;
		/* Complete already: no further recv (that would only say EAGAIN). */
		if ((rc = parse_response(c, false)) != 0)
			break;
		/* An event stream never completes: its answer is the event with
		 * the message. */
		if (opt.sse && c->kind == K_SUB && c->hdr_end && c->status == 200 &&
		    memmem(c->buf + c->hdr_end, c->len - c->hdr_end, opt.sse_mark,
			   strlen(opt.sse_mark))) {
			rc = 1;
			c->resp_len = c->len;
			c->server_close = true;
			break;
		}
	}
	if (c->buf)
		c->buf[c->len] = 0;
	if (rc == 0 || eof)
		rc = parse_response(c, eof);
	if (rc == 1) {
		c->t_done = now_s();
		c->state = S_DONE;
		if (eof)
			c->server_close = true;
		return 1;
	}
	if (rc < 0 || eof) {
		conn_fail(c, eof && c->len == 0 ? ECONNRESET : EPROTO);
		return -1;
	}
	return 0;
}

/* ----------------------------------------------------------------- HTTP/2 */

/* Subscribers as HTTP/2 streams (cleartext, prior knowledge), opt.h2 per
 * connection: how browsers reach a site over HTTPS, many requests on one
 * connection, and how lighttpd is asked for more requests than twice its
 * descriptors would allow over HTTP/1.1. Each stream is an hconn of its own
 * (fd -1, h2 set) that the fan-out counts like an HTTP/1.1 subscriber; the
 * connection is an hconn of kind K_H2 that is never counted. Only what a
 * subscriber needs: windows opened wide at the start, SETTINGS and PING
 * acknowledged, and of the response headers only :status, always the first
 * field (HPACK static table or a literal). */

struct h2 {
	struct hconn conn;		/* first: the epoll pointer */
	struct hconn **streams;		/* streams[i] has id 2i+1 */
	int nstreams, open;
};

static struct h2 **h2s;
static long nh2s;

/* Where the fan-out loops want a finished stream: rc 1 answered, -1 failed. */
static void (*on_stream)(struct hconn *s, int rc);

static void h2_frame_head(char *p, size_t len, int type, int flags, uint32_t id)
{
	p[0] = (char)(len >> 16);
	p[1] = (char)(len >> 8);
	p[2] = (char)len;
	p[3] = (char)type;
	p[4] = (char)flags;
	p[5] = (char)(id >> 24 & 0x7f);
	p[6] = (char)(id >> 16);
	p[7] = (char)(id >> 8);
	p[8] = (char)id;
}

/* HPACK integer with an n-bit prefix, first byte's high bits from first. */
static size_t hpack_int(char *p, unsigned first, int n, size_t v)
{
	size_t max = (1u << n) - 1, k = 0;
	if (v < max) {
		p[k++] = (char)(first | v);
		return k;
	}
	p[k++] = (char)(first | max);
	for (v -= max; v >= 128; v >>= 7)
		p[k++] = (char)(0x80 | (v & 0x7f));
	p[k++] = (char)v;
	return k;
}

/* A literal field without indexing, with its name from the static table. */
static size_t hpack_literal(char *p, int name_index, const char *value)
{
	size_t k = hpack_int(p, 0x00, 4, (size_t)name_index);
	size_t vl = strlen(value);
	k += hpack_int(p + k, 0x00, 7, vl);
	memcpy(p + k, value, vl);
	return k + vl;
}

/* The whole opening of a connection as its "request": preface, SETTINGS
 * (no push, 16 MiB stream windows), a 1 GiB connection window, and one
 * HEADERS frame (END_STREAM | END_HEADERS) per stream. */
static void h2_set_request(struct h2 *h, const char *path)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	const char *host_hdr = host_hdrs[h->conn.host];
	size_t cap = 128 + (size_t)h->nstreams * (64 + strlen(path) + strlen(host_hdr));
	char *o = xrealloc(NULL, cap);
	size_t k = 0;
	memcpy(o, preface, sizeof preface - 1);
	k += sizeof preface - 1;
	static const unsigned char settings[] = {
		0, 2, 0, 0, 0, 0,		/* ENABLE_PUSH 0 */
		0, 4, 0x01, 0, 0, 0,		/* INITIAL_WINDOW_SIZE 16 MiB */
	};
	h2_frame_head(o + k, sizeof settings, 4, 0, 0);
	memcpy(o + k + 9, settings, sizeof settings);
	k += 9 + sizeof settings;
	h2_frame_head(o + k, 4, 8, 0, 0);
	o[k + 9] = 0x3f;
	o[k + 10] = (char)0xff;
	o[k + 11] = 0;
	o[k + 12] = 0;
	k += 13;
	for (int i = 0; i < h->nstreams; i++) {
		char *hb = o + k + 9;
		size_t n = 0;
		hb[n++] = (char)0x82;	/* :method GET */
		hb[n++] = (char)0x86;	/* :scheme http */
		n += hpack_literal(hb + n, 4, path);		/* :path */
		n += hpack_literal(hb + n, 1, host_hdr);	/* :authority */
		n += hpack_literal(hb + n, 58, "comet-bench");	/* user-agent */
		if (opt.sse)
			n += hpack_literal(hb + n, 19, "text/event-stream");	/* accept */
		h2_frame_head(o + k, n, 1, 0x5, (uint32_t)(2 * i + 1));
		k += 9 + n;
	}
	free(h->conn.req);
	h->conn.req = o;
	h->conn.reqlen = k;
	h->conn.reqoff = 0;
}

static struct h2 *h2_open(struct hconn **streams, int n, const char *path)
{
	struct h2 *h = calloc(1, sizeof *h);
	h->conn.fd = -1;
	h->conn.kind = K_H2;
	h->conn.host = streams[0]->host;
	h->streams = xrealloc(NULL, (size_t)n * sizeof *h->streams);
	memcpy(h->streams, streams, (size_t)n * sizeof *streams);
	h->nstreams = h->open = n;
	for (int i = 0; i < n; i++) {
		streams[i]->h2 = h;
		streams[i]->state = S_CONNECTING;
		conn_reset_response(streams[i]);
	}
	h2_set_request(h, path);
	h2s = xrealloc(h2s, (size_t)(nh2s + 1) * sizeof *h2s);
	h2s[nh2s++] = h;
	if (conn_open(&h->conn) < 0) {
		for (int i = 0; i < n; i++) {
			streams[i]->state = S_FAILED;
			streams[i]->err = h->conn.err;
		}
		h->open = 0;
	}
	return h;
}

static void h2_finish(struct h2 *h, struct hconn *s, int rc, int err)
{
	if (s->state == S_DONE || s->state == S_FAILED)
		return;
	if (!s->buf) {
		s->buf = xrealloc(NULL, 1);
		s->cap = 1;
	}
	s->buf[s->len] = 0;
	s->t_done = now_s();
	s->state = rc > 0 ? S_DONE : S_FAILED;
	s->err = err;
	h->open--;
	if (on_stream)
		on_stream(s, rc);
}

static void h2_fail_all(struct h2 *h, int err)
{
	for (int i = 0; i < h->nstreams; i++)
		h2_finish(h, h->streams[i], -1, err);
	conn_close(&h->conn);
	h->conn.state = S_FAILED;
}

/* :status from the start of a header block: an indexed field of the static
 * table (200 204 206 304 400 404 500), or a literal whose name is :status,
 * its value plain or Huffman-coded (digits only). 0 when it is neither. */
static int h2_status(const unsigned char *p, size_t n)
{
	static const int indexed[] = { 200, 204, 206, 304, 400, 404, 500 };
	if (n < 1)
		return 0;
	if (p[0] & 0x80) {
		int i = p[0] & 0x7f;
		return i >= 8 && i <= 14 ? indexed[i - 8] : 0;
	}
	int name = (p[0] & 0xc0) == 0x40 ? p[0] & 0x3f : p[0] & 0x0f;
	if (name != 8 || n < 2)
		return 0;
	size_t len = p[1] & 0x7f;
	const unsigned char *v = p + 2;
	if (len > n - 2)
		return 0;
	if (!(p[1] & 0x80))
		return len == 3 ? atoi((const char[4]){ (char)v[0], (char)v[1], (char)v[2], 0 }) : 0;
	/* Huffman: '0'-'2' are 5-bit codes 0-2, '3'-'9' 6-bit codes 25-31. */
	int status = 0, digits = 0;
	size_t bit = 0, bits = len * 8;
	while (digits < 3 && bit + 5 <= bits) {
		unsigned code = 0;
		for (int b = 0; b < 5; b++, bit++)
			code = code << 1 | ((v[bit / 8] >> (7 - bit % 8)) & 1);
		int d;
		if (code <= 2) {
			d = (int)code;
		} else {
			if (bit >= bits)
				return 0;
			code = code << 1 | ((v[bit / 8] >> (7 - bit % 8)) & 1);
			bit++;
			if (code < 25 || code > 31)
				return 0;
			d = (int)code - 22;
		}
		status = status * 10 + d;
		digits++;
	}
	return digits == 3 ? status : 0;
}

static void h2_send(struct h2 *h, const char *p, size_t n)
{
	/* Tiny frames on a socket with nothing else to send: they fit. */
	if (send(h->conn.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n)
		h2_fail_all(h, errno ? errno : EPROTO);
}

/* One frame; false when the connection is finished with. */
static bool h2_frame(struct h2 *h, const unsigned char *f, size_t len)
{
	int type = f[3], flags = f[4];
	uint32_t id = ((uint32_t)(f[5] & 0x7f) << 24) | ((uint32_t)f[6] << 16) |
		      ((uint32_t)f[7] << 8) | f[8];
	const unsigned char *p = f + 9;
	struct hconn *s = NULL;
	if (id && id % 2 == 1 && (id - 1) / 2 < (uint32_t)h->nstreams)
		s = h->streams[(id - 1) / 2];
	size_t pad = 0;
	if ((type == 0 || type == 1) && (flags & 0x8)) {
		if (len < 1)
			return h2_fail_all(h, EPROTO), false;
		pad = p[0] + 1u;
		p++;
		if (pad - 1 > len - 1)
			return h2_fail_all(h, EPROTO), false;
	}
	size_t plen = len - pad;
	switch (type) {
	case 0:	/* DATA */
		if (s) {
			if (s->cap - s->len < plen + 1) {
				s->cap = s->len + plen + 1 + 256;
				s->buf = xrealloc(s->buf, s->cap);
			}
			memcpy(s->buf + s->len, p, plen);
			s->len += plen;
			/* An event stream's answer is the event with the message. */
			if ((flags & 0x1) || (opt.sse && s->status == 200 &&
					      memmem(s->buf, s->len, opt.sse_mark,
						     strlen(opt.sse_mark))))
				h2_finish(h, s, 1, 0);
		}
		break;
	case 1:	/* HEADERS: the first block has :status; a second is trailers */
		if (flags & 0x20) {	/* PRIORITY fields */
			p += 5;
			plen = plen >= 5 ? plen - 5 : 0;
		}
		if (s && !s->status)
			s->status = h2_status(p, plen);
		if (s && (flags & 0x1))
			h2_finish(h, s, 1, 0);
		break;
	case 3:	/* RST_STREAM */
		if (s)
			h2_finish(h, s, -1, ECONNRESET);
		break;
	case 4:	/* SETTINGS */
		if (!(flags & 0x1)) {
			char ack[9];
			h2_frame_head(ack, 0, 4, 0x1, 0);
			h2_send(h, ack, sizeof ack);
		}
		break;
	case 6:	/* PING */
		if (!(flags & 0x1) && len == 8) {
			char pong[17];
			h2_frame_head(pong, 8, 6, 0x1, 0);
			memcpy(pong + 9, p, 8);
			h2_send(h, pong, sizeof pong);
		}
		break;
	case 7:	/* GOAWAY */
		h2_fail_all(h, ECONNRESET);
		return false;
	default:	/* PRIORITY, WINDOW_UPDATE, CONTINUATION (not sent by these servers) */
		break;
	}
	return h->conn.state != S_FAILED;
}

/* Reads and handles every complete frame; finished streams go to on_stream.
 * Returns 0 (the connection itself is never a counted answer). */
static int h2_read(struct hconn *c)
{
	struct h2 *h = (struct h2 *)c;
	for (;;) {
		if (c->cap - c->len < 16384) {
			c->cap = c->cap ? c->cap * 2 : 65536;
			c->buf = xrealloc(c->buf, c->cap);
		}
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0) {
			h2_fail_all(h, r == 0 ? ECONNRESET : errno);
			return 0;
		}
		c->len += (size_t)r;
		size_t off = 0;
		while (c->len - off >= 9) {
			const unsigned char *f = (const unsigned char *)c->buf + off;
			size_t flen = ((size_t)f[0] << 16) | ((size_t)f[1] << 8) | f[2];
			if (c->len - off < 9 + flen)
				break;
			if (!h2_frame(h, f, flen))
				return 0;
			off += 9 + flen;
		}
		memmove(c->buf, c->buf + off, c->len - off);
		c->len -= off;
	}
	if (h->open == 0) {
		conn_close(c);
		c->state = S_DONE;
	}
	return 0;
}

static int conn_event1(struct hconn *c, uint32_t events);

/* Dispatches one epoll event. Returns 1 when c completed a response, -1 when
 * it failed, 0 otherwise (always for an HTTP/2 connection: its streams go
 * to on_stream). */
static int conn_event(struct hconn *c, uint32_t events)
{
	int rc = conn_event1(c, events);
	if (c->kind == K_H2 && rc < 0)
		h2_fail_all((struct h2 *)c, c->err);
	return c->kind == K_H2 ? 0 : rc;
}

static int conn_event1(struct hconn *c, uint32_t events)
{
	if (c->state == S_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			conn_fail(c, err);
			return -1;
		}
		c->state = S_WRITING;
		conn_write(c);
		return c->state == S_FAILED ? -1 : 0;
	}
	if (c->state == S_WRITING) {
		conn_write(c);
		return c->state == S_FAILED ? -1 : 0;
	}
	if (c->state == S_READING) {
		(void)events;
		if (c->kind == K_H2)
			return h2_read(c);
		return conn_read(c);
	}
	return 0;
}

/* ------------------------------------------------------------------- rate */

/* Called for events of connections a loop does not own (held subscribers). */
static void (*on_other)(struct hconn *c, int rc);

struct rate_result {
	long ok, non2xx, errors, reconnects;
	long msgs;			/* messages: ok, times --pub-batch */
	long short_acks;		/* batch answers without an ack per message */
	long host_ok[MAX_HOSTS];	/* answered 2xx, by the server that answered */
	struct samples host_lat[MAX_HOSTS];
	double elapsed;
	long long cpu0[MAX_GROUPS + 1], cpu1[MAX_GROUPS + 1];
	struct samples lat;		/* ms */
};

static char *make_body(int size, long seq)
{
	char *b = xrealloc(NULL, (size_t)size + 1);
	int n = snprintf(b, (size_t)size + 1, "bench message %ld ", seq);
	for (int i = n; i < size; i++)
		b[i] = (char)('a' + i % 26);
	b[size] = 0;
	return b;
}

/* A batch publish (comet-fcgi: POST a JSON array without a channel):
 * [{"channel":C,"data":"bench message SEQ aaa..."}, ...], opt.pub_batch
 * messages of opt.body_size bytes each, numbered from seq. */
static char *make_batch(long seq, size_t *len)
{
	size_t per = (size_t)opt.body_size + strlen(opt.batch_channel) + 32;
	char *b = xrealloc(NULL, 2 + (size_t)opt.pub_batch * per + 1);
	size_t k = 0;
	b[k++] = '[';
	for (int i = 0; i < opt.pub_batch; i++) {
		char *m = make_body(opt.body_size, seq + i);
		k += (size_t)sprintf(b + k, "%s{\"channel\":\"%s\",\"data\":\"%s\"}",
				     i ? "," : "", opt.batch_channel, m);
		free(m);
	}
	b[k++] = ']';
	b[k] = 0;
	*len = k;
	return b;
}

static void hex(const unsigned char *d, unsigned n, char *out)
{
	for (unsigned i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* A Pusher HTTP API publish, signed as Pusher's server libraries sign it:
 * POST /apps/ID/events (or batch_events for --pub-batch K) with auth_key,
 * auth_timestamp, auth_version, body_md5 and the HMAC-SHA256 of the
 * method, path and sorted query; each request signed afresh. */
static void rate_send_pusher(struct hconn *c, long seq)
{
	int k = opt.pub_batch > 0 ? opt.pub_batch : 1;
	size_t per = (size_t)opt.body_size + strlen(opt.batch_channel) + 64;
	char *body = xrealloc(NULL, 16 + (size_t)k * per);
	size_t len = 0;
	if (opt.pub_batch > 0)
		len += (size_t)sprintf(body, "{\"batch\":[");
	for (int i = 0; i < k; i++) {
		char *m = make_body(opt.body_size, seq * k + i);
		len += (size_t)sprintf(body + len, opt.pub_batch > 0
				       ? "%s{\"name\":\"bench\",\"channel\":\"%s\",\"data\":\"%s\"}"
				       : "%s{\"name\":\"bench\",\"channels\":[\"%s\"],\"data\":\"%s\"}",
				       i ? "," : "", opt.batch_channel, m);
		free(m);
	}
	if (opt.pub_batch > 0)
		len += (size_t)sprintf(body + len, "]}");
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen;
	char md5[33], sig[65], path[256], tosign[512];
	EVP_Digest(body, len, md, &mdlen, EVP_md5(), NULL);
	hex(md, mdlen, md5);
	snprintf(path, sizeof path, "/apps/%s/%s", opt.pusher_id,
		 opt.pub_batch > 0 ? "batch_events" : "events");
	int n = snprintf(tosign, sizeof tosign, "POST\n%s\nauth_key=%s&auth_timestamp=%ld"
			 "&auth_version=1.0&body_md5=%s", path, opt.pusher_key,
			 (long)time(NULL), md5);
	HMAC(EVP_sha256(), opt.pusher_secret, (int)strlen(opt.pusher_secret),
	     (unsigned char *)tosign, (size_t)n, md, &mdlen);
	hex(md, mdlen, sig);
	char url[1024];
	snprintf(url, sizeof url, "%s?%s&auth_signature=%s", path,
		 strchr(strchr(tosign, '\n') + 1, '\n') + 1, sig);
	conn_set_request(c, "POST", url, "application/json", body, len, true);
	free(body);
}

static void rate_send(struct hconn *c, const char *path, long seq)
{
	if (opt.pusher_id) {
		rate_send_pusher(c, seq);
		return;
	}
	if (opt.pub_batch > 0) {
		size_t len;
		char *body = make_batch(seq * opt.pub_batch, &len);
		conn_set_request(c, "POST", path, "application/json", body, len, true);
		free(body);
		return;
	}
	char *body = make_body(opt.body_size, seq);
	conn_set_request(c, "POST", path, "text/plain", body, (size_t)opt.body_size, true);
	free(body);
}

/* Acks in a batch answer: occurrences of "id": in its body. */
static long count_acks(const struct hconn *c)
{
	long n = 0;
	const char *p = c->buf + c->hdr_end, *end = c->buf + c->resp_len;
	while (p < end && (p = memmem(p, (size_t)(end - p), "\"id\":", 5))) {
		n++;
		p += 5;
	}
	return n;
}

static void run_rate(const char *path, int nconns, double duration, struct rate_result *res)
{
	memset(res, 0, sizeof *res);
	struct hconn *cs = calloc((size_t)nconns, sizeof *cs);
	long seq = 0;
	for (int i = 0; i < nconns; i++) {
		cs[i].fd = -1;
		cs[i].kind = K_PUB;
		cs[i].id = i;
		cs[i].host = i % nhosts;	/* publishers alternate servers */
		rate_send(&cs[i], path, ++seq);
		if (conn_open(&cs[i]) < 0) {
			res->errors++;
		}
	}
	cpu_read(res->cpu0);
	double start = now_s(), stop = start + duration, hard = stop + 10;
	double last = start;
	int active = 0;
	for (int i = 0; i < nconns; i++)
		active += cs[i].state != S_FAILED;
	struct epoll_event evs[256];
	while (active > 0) {
		double t = now_s();
		if (t > hard)
			break;
		int n = epoll_wait(ep, evs, 256, 100);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct hconn *c = evs[i].data.ptr;
			int rc = conn_event(c, evs[i].events);
			if (c->kind != K_PUB) {
				/* a held subscriber (rate run inside fanout) */
				if (rc != 0 && on_other)
					on_other(c, rc);
				continue;
			}
			if (rc == 0)
				continue;
			t = now_s();
			if (rc > 0) {
				last = t;
				if (c->status >= 200 && c->status < 300) {
					res->ok++;
					res->host_ok[c->host]++;
					samples_add(&res->lat, (c->t_done - c->t_sent) * 1000);
					samples_add(&res->host_lat[c->host],
						    (c->t_done - c->t_sent) * 1000);
					if (opt.pusher_id) {
						/* Pusher answers {} (or one {} a batch event). */
						res->msgs += opt.pub_batch > 0 ? opt.pub_batch : 1;
					} else if (opt.pub_batch > 0) {
						long acks = count_acks(c);
						res->msgs += acks;
						if (acks != opt.pub_batch && res->short_acks++ < 3)
							fprintf(stderr, "bench: batch of %d answered "
								"with %ld acks: %.200s\n", opt.pub_batch,
								acks, c->buf + c->hdr_end);
					} else {
						res->msgs++;
					}
				} else {
					res->non2xx++;
					if (res->non2xx <= 3)
						fprintf(stderr, "bench: publish answered %d: %.200s\n",
							c->status, c->buf + c->hdr_end);
				}
			} else {
				res->errors++;
				if (res->errors <= 3)
					fprintf(stderr, "bench: publish connection failed: %s\n",
						strerror(c->err));
			}
			if (t >= stop) {
				conn_close(c);
				c->state = S_DONE;
				active--;
				continue;
			}
			rate_send(c, path, ++seq);
			if (rc > 0 && !c->server_close && c->len == c->resp_len) {
				conn_send_again(c);
			} else {
				conn_close(c);
				res->reconnects++;
				conn_open(c);
			}
			if (c->state == S_FAILED) {
				res->errors++;
				active--;
			}
		}
	}
	res->elapsed = last - start;
	cpu_read(res->cpu1);
	for (int i = 0; i < nconns; i++) {
		conn_close(&cs[i]);
		free(cs[i].buf);
		free(cs[i].req);
	}
	free(cs);
	qsort(res->lat.v, res->lat.n, sizeof(double), cmp_double);
	for (int h = 0; h < nhosts; h++)
		qsort(res->host_lat[h].v, res->host_lat[h].n, sizeof(double), cmp_double);
}

static void print_rate(const char *measure, long held, double duration,
		       const struct rate_result *r)
{
	/* Messages per second (a batch request carries opt.pub_batch). */
	double rate = r->elapsed > 0 ? (double)r->msgs / r->elapsed : 0;
	double req_rate = r->elapsed > 0 ? (double)r->ok / r->elapsed : 0;
	if (!opt.quiet) {
		printf("== %s: %s, %d connections%s, %.1f s%s\n", measure, opt.label, opt.conns,
		       nhosts > 1 ? " alternating servers" : "",
		       duration, held ? " (with subscribers held)" : "");
		if (opt.pub_batch > 0)
			printf("   batches of %d: %ld requests answered 2xx (%ld without every ack)\n",
			       opt.pub_batch, r->ok, r->short_acks);
		printf("   published %ld (non-2xx %ld, errors %ld, reconnects %ld) in %.2f s\n",
		       r->msgs, r->non2xx, r->errors, r->reconnects, r->elapsed);
		printf("   %.0f msg/s (%.0f requests/s)   latency p50 %.3f ms  p99 %.3f ms  max %.3f ms\n",
		       rate, req_rate, pct(&r->lat, 50), pct(&r->lat, 99), pct(&r->lat, 100));
		for (int h = 0; nhosts > 1 && h < nhosts; h++)
			printf("   server %d (port %d): %ld requests, latency p50 %.3f ms  p99 %.3f ms\n",
			       h, ntohs(targets[h].sin_port), r->host_ok[h],
			       pct(&r->host_lat[h], 50), pct(&r->host_lat[h], 99));
		cpu_print(stdout, false, r->cpu0, r->cpu1, r->elapsed);
	}
	printf("{");
	jstr(stdout, "measure", measure, true);
	jstr(stdout, "target", opt.label, true);
	printf("\"conns\":%d,\"duration_s\":%.1f,\"held\":%ld,", opt.conns, duration, held);
	printf("\"published\":%ld,\"non2xx\":%ld,\"errors\":%ld,\"reconnects\":%ld,",
	       r->msgs, r->non2xx, r->errors, r->reconnects);
	printf("\"requests\":%ld,\"pub_batch\":%d,\"short_acks\":%ld,\"nhosts\":%d,",
	       r->ok, opt.pub_batch > 0 ? opt.pub_batch : 1, r->short_acks, nhosts);
	if (nhosts > 1) {
		printf("\"per_host\":[");
		for (int h = 0; h < nhosts; h++) {
			printf("%s{\"port\":%d,\"requests\":%ld,", h ? "," : "",
			       ntohs(targets[h].sin_port), r->host_ok[h]);
			jnum(stdout, "p50_ms", pct(&r->host_lat[h], 50), 3, true);
			jnum(stdout, "p99_ms", pct(&r->host_lat[h], 99), 3, false);
			printf("}");
		}
		printf("],");
	}
	jnum(stdout, "elapsed_s", r->elapsed, 3, true);
	jnum(stdout, "msg_per_s", rate, 1, true);
	jnum(stdout, "req_per_s", req_rate, 1, true);
	jnum(stdout, "p50_ms", pct(&r->lat, 50), 3, true);
	jnum(stdout, "p99_ms", pct(&r->lat, 99), 3, true);
	jnum(stdout, "max_ms", pct(&r->lat, 100), 3, false);
	cpu_print(stdout, true, r->cpu0, r->cpu1, r->elapsed);
	printf("}\n");
	fflush(stdout);
}

/* ----------------------------------------------------------------- fanout */

/* One GET of the readiness URL of server host; returns the count found
 * after ready_key, or -1. Runs its own small bounded loop, but keeps serving
 * subscriber events (through on_other) so that early answers are seen. */
static long ready_count_of(int host, double timeout)
{
	struct hconn r = { .fd = -1, .kind = K_READY, .host = host };
	conn_set_request(&r, "GET", opt.ready_path, NULL, NULL, 0, false);
	if (conn_open(&r) < 0) {
		free(r.req);
		return -1;
	}
	double deadline = now_s() + timeout;
	struct epoll_event evs[256];
	long count = -1;
	while (r.state != S_DONE && r.state != S_FAILED && now_s() < deadline) {
		int n = epoll_wait(ep, evs, 256, 50);
		for (int i = 0; i < n; i++) {
			struct hconn *c = evs[i].data.ptr;
			int rc = conn_event(c, evs[i].events);
			if (c != &r && rc != 0 && on_other)
				on_other(c, rc);
		}
	}
	if (r.state == S_DONE && r.status == 200) {
		const char *k = strstr(r.buf + r.hdr_end, opt.ready_key);
		if (k) {
			k += strlen(opt.ready_key);
			while (*k == ' ' || *k == '"' || *k == ':' || *k == '\t')
				k++;
			if (isdigit((unsigned char)*k))
				count = strtol(k, NULL, 10);
		}
		if (count < 0)
			fprintf(stderr, "bench: %s has no \"%s\" count: %.300s\n",
				opt.ready_path, opt.ready_key, r.buf + r.hdr_end);
	} else if (r.state == S_DONE) {
		fprintf(stderr, "bench: %s answered %d: %.300s\n", opt.ready_path, r.status,
			r.buf + r.hdr_end);
	}
	conn_close(&r);
	free(r.buf);
	free(r.req);
	return count;
}

/* subs[] holds N per server: server h's are subs[h*N .. h*N+N-1]; subs_open
 * of each are opened. */
static struct hconn *subs;
static long subs_open, subs_failed, subs_early, early_logged;
static int fail_errno[8];
static long fail_count[8];

static void note_fail(int err)
{
	for (int i = 0; i < 8; i++) {
		if (fail_count[i] && fail_errno[i] == err) {
			fail_count[i]++;
			return;
		}
		if (!fail_count[i]) {
			fail_errno[i] = err;
			fail_count[i] = 1;
			return;
		}
	}
}

/* A subscriber event before the publish: any answer now is early. */
static void early(struct hconn *c, int rc)
{
	if (c->kind != K_SUB)
		return;
	if (rc > 0) {
		subs_early++;
		if (early_logged++ < 3)
			fprintf(stderr, "bench: subscriber %d answered before the publish: %d %.200s\n",
				c->id, c->status, c->buf + c->hdr_end);
		conn_close(c);
	} else {
		subs_failed++;
		note_fail(c->err);
		if (early_logged++ < 3)
			fprintf(stderr, "bench: subscriber %d failed: %s\n", c->id, strerror(c->err));
	}
}

static void fail_summary(char *out, size_t n)
{
	out[0] = 0;
	size_t o = 0;
	for (int i = 0; i < 8 && fail_count[i]; i++)
		o += (size_t)snprintf(out + o, n - o, "%s%s x%ld", o ? ", " : "",
				      strerror(fail_errno[i]), fail_count[i]);
}

/* The answers after the publish. */
static struct {
	double t0;
	char *expect_body;		/* --check: what each answer must carry */
	long pending, answered, non200, wrong, late_fail;
	struct samples lat;
	struct samples host_lat[MAX_HOSTS];	/* the same, by server */
	long host_answered[MAX_HOSTS];
} fw;

static void fanout_answer(struct hconn *c, int rc)
{
	if (c->kind != K_SUB)
		return;
	fw.pending--;
	if (rc > 0) {
		const char *body = c->buf ? c->buf + c->hdr_end : "";
		if (c->status != 200) {
			fw.non200++;
		} else if (fw.expect_body && !strstr(body, fw.expect_body)) {
			fw.wrong++;
			if (fw.wrong <= 3)
				fprintf(stderr, "bench: subscriber %d answered without the message: %.200s\n",
					c->id, body);
		} else {
			fw.answered++;
			samples_add(&fw.lat, (c->t_done - fw.t0) * 1000);
			fw.host_answered[c->host]++;
			samples_add(&fw.host_lat[c->host], (c->t_done - fw.t0) * 1000);
		}
		conn_close(c);
	} else {
		fw.late_fail++;
		note_fail(c->err);
	}
}

/* Opens subscribers subs[from..to-1] on server host: each a connection
 * (HTTP/1.1), or opt.h2 streams to a connection (fewer at the range's end). */
static void open_subs(long from, long to, int host)
{
	for (long i = from; i < to; i++) {
		struct hconn *c = &subs[i];
		c->fd = -1;
		c->kind = K_SUB;
		c->id = (int)i;
		c->host = host;
		if (opt.h2) {
			long first = i - (i - from) % opt.h2;
			if (i + 1 == to || (i + 1 - from) % opt.h2 == 0) {
				struct hconn *group[256];
				int k = 0;
				for (long j = first; j <= i; j++)
					group[k++] = &subs[j];
				h2_open(group, k, opt.sub_path);
				for (long j = first; j <= i; j++)
					if (subs[j].state == S_FAILED) {
						subs_failed++;
						note_fail(subs[j].err);
					}
			}
			continue;
		}
		conn_set_request(c, "GET", opt.sub_path, NULL, NULL, 0, true);
		if (conn_open(c) < 0) {
			subs_failed++;
			note_fail(c->err);
		}
	}
}

/* Held subscribers over every server (each count minus its base), or -1
 * when a server gave no count. */
static long ready_total(const long *base, double timeout)
{
	long total = 0;
	for (int h = 0; h < nhosts; h++) {
		long c = ready_count_of(h, timeout);
		if (c < 0)
			return -1;
		total += c - base[h];
	}
	return total;
}

static void run_fanout(void)
{
	long N = opt.n;			/* per server */
	long total = N * nhosts;
	subs = calloc((size_t)total, sizeof *subs);
	for (long i = 0; i < total; i++) {
		subs[i].fd = -1;
		subs[i].state = S_DONE;	/* not opened */
	}
	on_other = early;
	on_stream = early;
	if (ngroups)
		mem_read(0);

	/* Open the subscribers, batch by batch (a batch: opt.batch on every
	 * server); each batch is waited for with the servers' own counts, so
	 * no sleep guesses when they are held. */
	double open_start = now_s();
	long held = 0, last_count = 0;
	bool stalled = false;
	char stall_reason[256] = "";
	long base[MAX_HOSTS];		/* subscribers each server has already */
	for (int h = 0; h < nhosts; h++) {
		base[h] = ready_count_of(h, 5);
		if (base[h] < 0)
			die("readiness URL %s of port %d did not give a count (key \"%s\")",
			    opt.ready_path, ntohs(targets[h].sin_port), opt.ready_key);
	}
	while (subs_open < N && !stalled) {
		long upto = subs_open + opt.batch < N ? subs_open + opt.batch : N;
		for (int h = 0; h < nhosts; h++)
			open_subs(h * N + subs_open, h * N + upto, h);
		subs_open = upto;
		/* Poll the count until the batch is held; give up when it makes
		 * no progress for ready_timeout seconds. */
		double progress_at = now_s();
		double interval = 0.005;
		for (int polls = 0; polls < 100000; polls++) {
			long want = subs_open * nhosts - subs_failed - subs_early;
			long cnt = ready_total(base, 5);
			if (cnt >= 0) {
				if (cnt > last_count)
					progress_at = now_s();
				last_count = cnt;
				if (cnt >= want)
					break;
			}
			if (now_s() - progress_at > opt.ready_timeout) {
				snprintf(stall_reason, sizeof stall_reason,
					 "no progress for %.0f s: server counts %ld held of %ld sent",
					 opt.ready_timeout, cnt, want);
				stalled = true;
				break;
			}
			/* Serve events meanwhile (early answers, connects). */
			struct epoll_event evs[256];
			int n = epoll_wait(ep, evs, 256, (int)(interval * 1000));
			for (int i = 0; i < n; i++) {
				struct hconn *c = evs[i].data.ptr;
				int rc = conn_event(c, evs[i].events);
				if (rc != 0)
					early(c, rc);
			}
			interval = interval * 1.5 < 0.1 ? interval * 1.5 : 0.1;
		}
	}
	held = last_count;
	double open_s = now_s() - open_start;
	if (ngroups)
		mem_read(1);

	/* Optionally, the publish rate on another channel while these are held. */
	struct rate_result rr = { 0 };
	bool did_rate = false;
	if (opt.rate_while_held > 0 && opt.rate_pub_path && stalled) {
		fprintf(stderr, "bench: opening stalled; no publish-rate run while held\n");
	} else if (opt.rate_while_held > 0 && opt.rate_pub_path) {
		run_rate(opt.rate_pub_path, opt.conns, opt.rate_while_held, &rr);
		did_rate = true;
		long cnt = ready_total(base, 5);
		if (cnt >= 0 && cnt < held)
			fprintf(stderr, "bench: only %ld subscribers still held after the rate run\n",
				cnt);
	}

	/* The publish. The connection is established first, so that t0 is the
	 * moment the request is written. */
	struct hconn pub = { .fd = -1, .kind = K_PUB };
	char *body = make_body(opt.body_size, 0);
	if (opt.form_topic) {
		/* A Mercure publish: the form the hub takes. */
		size_t n = strlen(opt.form_topic) * 3 + (size_t)opt.body_size + 32;
		char *form = xrealloc(NULL, n);
		int len = snprintf(form, n, "topic=%s&data=%s", opt.form_topic, body);
		conn_set_request(&pub, "POST", opt.fanout_pub_path,
				 "application/x-www-form-urlencoded", form, (size_t)len, false);
		free(form);
	} else {
		conn_set_request(&pub, "POST", opt.fanout_pub_path, "text/plain", body,
				 (size_t)opt.body_size, false);
	}
	free(body);
	conn_reset_response(&pub);
	pub.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (pub.fd < 0 || connect(pub.fd, (struct sockaddr *)&targets[0], sizeof targets[0]) < 0)
		die("publish connection: %s", strerror(errno));
	int one = 1;
	setsockopt(pub.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(pub.fd, F_SETFL, fcntl(pub.fd, F_GETFL) | O_NONBLOCK);
	pub.state = S_WRITING;
	set_events(&pub, EPOLLOUT, EPOLL_CTL_ADD);
	long long fcpu0[MAX_GROUPS + 1], fcpu1[MAX_GROUPS + 1];
	cpu_read(fcpu0);
	double t0 = now_s();
	conn_write(&pub);

	fw.t0 = t0;
	fw.expect_body = opt.check ? make_body(opt.body_size, 0) : NULL;
	for (long i = 0; i < total; i++)
		if ((subs[i].fd >= 0 || subs[i].h2) &&
		    (subs[i].state == S_READING || subs[i].state == S_WRITING ||
		     subs[i].state == S_CONNECTING))
			fw.pending++;
	long expect = fw.pending;
	on_stream = fanout_answer;
	/* When opening stalled, the server may not even accept the publish;
	 * do not wait the full answer timeout for that. */
	double deadline = t0 + (stalled && opt.answer_timeout > 10 ? 10 : opt.answer_timeout);
	struct epoll_event *evs = calloc(1024, sizeof *evs);
	while ((fw.pending > 0 || (pub.state != S_DONE && pub.state != S_FAILED)) &&
	       now_s() < deadline) {
		int n = epoll_wait(ep, evs, 1024, 100);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct hconn *c = evs[i].data.ptr;
			int rc = conn_event(c, evs[i].events);
			if (c == &pub) {
				/* Done with it: out of the epoll set, or its
				 * hang-up would be reported again and again. */
				if (rc != 0)
					conn_close(&pub);
				continue;
			}
			if (rc != 0)
				fanout_answer(c, rc);
		}
	}
	free(evs);
	on_stream = NULL;
	free(fw.expect_body);
	struct samples lat = fw.lat;
	long answered = fw.answered, non200 = fw.non200, late_fail = fw.late_fail;
	long pending = fw.pending, wrong = fw.wrong;
	double t_last = lat.n ? t0 + lat.v[lat.n - 1] / 1000 : now_s();
	cpu_read(fcpu1);
	double pub_ms = pub.state == S_DONE ? (pub.t_done - t0) * 1000 : NAN;
	int pub_status = pub.state == S_DONE ? pub.status : 0;
	conn_close(&pub);
	free(pub.buf);
	free(pub.req);
	for (long i = 0; i < total; i++) {
		conn_close(&subs[i]);
		free(subs[i].buf);
		free(subs[i].req);
	}
	free(subs);
	for (long i = 0; i < nh2s; i++) {
		conn_close(&h2s[i]->conn);
		free(h2s[i]->conn.buf);
		free(h2s[i]->conn.req);
		free(h2s[i]->streams);
		free(h2s[i]);
	}
	free(h2s);
	h2s = NULL;
	nh2s = 0;
	qsort(lat.v, lat.n, sizeof(double), cmp_double);
	for (int h = 0; h < nhosts; h++)
		qsort(fw.host_lat[h].v, fw.host_lat[h].n, sizeof(double), cmp_double);

	char fails[512];
	fail_summary(fails, sizeof fails);
	if (!opt.quiet) {
		if (nhosts > 1)
			printf("== fanout: %s, N=%ld on each of %d servers, published to port %d\n",
			       opt.label, N, nhosts, ntohs(targets[0].sin_port));
		else
			printf("== fanout: %s, N=%ld\n", opt.label, N);
		printf("   opened %ld, held %ld (server count) in %.2f s%s%s\n", subs_open * nhosts, held,
		       open_s, stalled ? "; STALLED: " : "", stall_reason);
		if (subs_failed || subs_early || late_fail)
			printf("   failed connections %ld, early answers %ld, failed after publish %ld%s%s\n",
			       subs_failed, subs_early, late_fail, fails[0] ? ": " : "", fails);
		printf("   publish answered %d in %.3f ms\n", pub_status, pub_ms);
		printf("   answered %ld of %ld waiting (non-200 %ld, without the message %ld, "
		       "unanswered %ld after %.0f s)\n",
		       answered, expect, non200, wrong, pending, opt.answer_timeout);
		printf("   fan-out latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
		       pct(&lat, 50), pct(&lat, 90), pct(&lat, 99), pct(&lat, 100));
		for (int h = 0; nhosts > 1 && h < nhosts; h++)
			printf("   server %d (port %d%s): answered %ld; first %.3f  p50 %.3f  p90 %.3f  "
			       "p99 %.3f  max %.3f\n", h, ntohs(targets[h].sin_port),
			       h ? "" : ", published to", fw.host_answered[h], pct(&fw.host_lat[h], 0),
			       pct(&fw.host_lat[h], 50), pct(&fw.host_lat[h], 90),
			       pct(&fw.host_lat[h], 99), pct(&fw.host_lat[h], 100));
		cpu_print(stdout, false, fcpu0, fcpu1, t_last - t0);
		for (int g = 0; g < ngroups; g++) {
			struct memgroup *m = &groups[g];
			long div = held > 0 ? held : 1;
			printf("   memory %-8s pids", m->label);
			for (int j = 0; j < m->npids; j++)
				printf("%s%d", j ? "," : " ", m->pids[j]);
			printf(": RSS %.1f -> %.1f MiB, private %.1f -> %.1f MiB; per held subscriber: "
			       "RSS %lld B, private %lld B, PSS %lld B\n",
			       m->rss[0] / 1048576.0, m->rss[1] / 1048576.0,
			       m->priv[0] / 1048576.0, m->priv[1] / 1048576.0,
			       (m->rss[1] - m->rss[0]) / div, (m->priv[1] - m->priv[0]) / div,
			       (m->pss[1] - m->pss[0]) / div);
		}
	}
	printf("{");
	jstr(stdout, "measure", "fanout", true);
	jstr(stdout, "target", opt.label, true);
	printf("\"n\":%ld,\"opened\":%ld,\"held\":%ld,\"connect_failed\":%ld,\"early\":%ld,",
	       N, subs_open * nhosts, held, subs_failed, subs_early);
	printf("\"nhosts\":%d,", nhosts);
	if (nhosts > 1) {
		/* By server; [0] is the one published to. */
		printf("\"per_host\":[");
		for (int h = 0; h < nhosts; h++) {
			printf("%s{\"port\":%d,\"answered\":%ld,", h ? "," : "",
			       ntohs(targets[h].sin_port), fw.host_answered[h]);
			jnum(stdout, "min_ms", pct(&fw.host_lat[h], 0), 3, true);
			jnum(stdout, "p50_ms", pct(&fw.host_lat[h], 50), 3, true);
			jnum(stdout, "p90_ms", pct(&fw.host_lat[h], 90), 3, true);
			jnum(stdout, "p99_ms", pct(&fw.host_lat[h], 99), 3, true);
			jnum(stdout, "max_ms", pct(&fw.host_lat[h], 100), 3, false);
			printf("}");
		}
		printf("],");
	}
	printf("\"stalled\":%s,", stalled ? "true" : "false");
	jstr(stdout, "stall_reason", stall_reason, true);
	jstr(stdout, "failures", fails, true);
	jnum(stdout, "open_s", open_s, 3, true);
	printf("\"pub_status\":%d,", pub_status);
	jnum(stdout, "pub_ms", pub_ms, 3, true);
	printf("\"waiting\":%ld,\"answered\":%ld,\"non200\":%ld,\"wrong\":%ld,"
	       "\"failed_after\":%ld,\"unanswered\":%ld,\"h2_streams\":%d,",
	       expect, answered, non200, wrong, late_fail, pending, opt.h2);
	jnum(stdout, "min_ms", pct(&lat, 0), 3, true);
	jnum(stdout, "p50_ms", pct(&lat, 50), 3, true);
	jnum(stdout, "p90_ms", pct(&lat, 90), 3, true);
	jnum(stdout, "p99_ms", pct(&lat, 99), 3, true);
	jnum(stdout, "max_ms", pct(&lat, 100), 3, true);
	jnum(stdout, "fanout_wall_s", t_last - t0, 4, false);
	cpu_print(stdout, true, fcpu0, fcpu1, t_last - t0);
	printf(",\"mem\":{");
	for (int g = 0; g < ngroups; g++) {
		struct memgroup *m = &groups[g];
		long div = held > 0 ? held : 1;
		printf("%s\"%s\":{\"pids\":[", g ? "," : "", m->label);
		for (int j = 0; j < m->npids; j++)
			printf("%s%d", j ? "," : "", m->pids[j]);
		printf("],\"rss_before\":%lld,\"rss_held\":%lld,\"private_before\":%lld,"
		       "\"private_held\":%lld,\"pss_before\":%lld,\"pss_held\":%lld,"
		       "\"anon_before\":%lld,\"anon_held\":%lld,"
		       "\"rss_per_sub\":%lld,\"private_per_sub\":%lld,\"pss_per_sub\":%lld}",
		       m->rss[0], m->rss[1], m->priv[0], m->priv[1], m->pss[0], m->pss[1],
		       m->anon[0], m->anon[1],
		       (m->rss[1] - m->rss[0]) / div, (m->priv[1] - m->priv[0]) / div,
		       (m->pss[1] - m->pss[0]) / div);
	}
	printf("}}\n");
	fflush(stdout);
	if (did_rate)
		print_rate("rate_held", held, opt.rate_while_held, &rr);
	free(lat.v);
	for (int h = 0; h < MAX_HOSTS; h++)
		free(fw.host_lat[h].v);
	free(rr.lat.v);
	for (int h = 0; h < MAX_HOSTS; h++)
		free(rr.host_lat[h].v);
}

/* ------------------------------------------------------------------- herd */

/* N long-polls held, one publish, and every subscriber asks again the
 * moment its answer arrives (the herd a fan-out brings), for --rounds
 * rounds. Each subscriber asks with a JSONP callback of its own and the
 * cursor of its last answer, so that an answer that reached the wrong
 * request (another's callback) or skipped or repeated (a cursor other than
 * the published id) is seen, not only one that is missing. */
struct herd_round {
	long pending, right, non200, foreign, no_msg, bad_cursor, failed;
	long resub_failed;
	long nstatus[8];
	int status[8];
	struct samples lat;
};
static struct {
	long *cursor;		/* per subscriber: since for its next request */
	long round_id;		/* the id the publish of this round got, once known */
	char tag[64];		/* this round's message text */
	double t0;
	struct herd_round r;	/* this round's counts */
} hw;

static void herd_request(struct hconn *c)
{
	char path[1024];
	if (hw.cursor[c->id] >= 0)
		snprintf(path, sizeof path, "%s&callback=cb%d&since=%ld", opt.sub_path, c->id,
			 hw.cursor[c->id]);
	else
		snprintf(path, sizeof path, "%s&callback=cb%d", opt.sub_path, c->id);
	conn_set_request(c, "GET", path, NULL, NULL, 0, true);
}

/* Asks again: on the same connection when the server kept it open. */
static void herd_again(struct hconn *c, bool reuse)
{
	herd_request(c);
	if (reuse) {
		conn_send_again(c);
	} else {
		conn_close(c);
		conn_open(c);
	}
	if (c->state == S_FAILED)
		hw.r.resub_failed++;
}

static void herd_note_status(int status)
{
	for (int i = 0; i < 8; i++) {
		if (hw.r.nstatus[i] && hw.r.status[i] != status)
			continue;
		hw.r.status[i] = status;
		hw.r.nstatus[i]++;
		return;
	}
}

/* An answer of this round: checked, then the subscriber asks again. */
static void herd_answer(struct hconn *c, int rc)
{
	if (c->kind != K_SUB)
		return;
	hw.r.pending--;
	if (rc < 0) {
		hw.r.failed++;
		note_fail(c->err);
		herd_again(c, false);
		return;
	}
	const char *body = c->buf + c->hdr_end;
	char want[32];
	int wl = snprintf(want, sizeof want, "cb%d(", c->id);
	const char *lid = strstr(body, "\"last_id\":");
	long last = lid ? strtol(lid + 10, NULL, 10) : -1;
	if (c->status != 200) {
		hw.r.non200++;
		herd_note_status(c->status);
		if (hw.r.non200 <= 3)
			fprintf(stderr, "bench: subscriber %d answered %d: %.200s\n", c->id,
				c->status, body);
	} else if (strncmp(body, want, (size_t)wl) != 0) {
		/* Another request's answer, or none of ours: never acceptable. */
		hw.r.foreign++;
		fprintf(stderr, "bench: subscriber %d got an answer not its own: %.200s\n",
			c->id, body);
	} else if (!strstr(body, hw.tag)) {
		hw.r.no_msg++;
		if (hw.r.no_msg <= 3)
			fprintf(stderr, "bench: subscriber %d answered without the message: %.200s\n",
				c->id, body);
	} else if (hw.cursor[c->id] >= 0 && hw.round_id > 0 && last != hw.round_id) {
		hw.r.bad_cursor++;
		if (hw.r.bad_cursor <= 3)
			fprintf(stderr, "bench: subscriber %d (since %ld) answered last_id %ld, "
				"published %ld\n", c->id, hw.cursor[c->id], last, hw.round_id);
	} else {
		hw.r.right++;
		samples_add(&hw.r.lat, (c->t_done - hw.t0) * 1000);
	}
	if (c->status == 200 && last > 0)
		hw.cursor[c->id] = last;
	herd_again(c, !opt.fresh && rc > 0 && !c->server_close && c->len == c->resp_len);
}

/* Publishes this round's message on a new connection; the id it got. */
static long herd_publish(int round)
{
	struct hconn pub = { .fd = -1, .kind = K_PUB };
	snprintf(hw.tag, sizeof hw.tag, "herd round %d of %ld", round, opt.n);
	conn_set_request(&pub, "POST", opt.fanout_pub_path, "text/plain", hw.tag,
			 strlen(hw.tag), false);
	hw.t0 = now_s();
	if (conn_open(&pub) < 0)
		die("publish connection: %s", strerror(pub.err));
	struct epoll_event evs[1024];
	double deadline = hw.t0 + opt.answer_timeout;
	long id = -1;
	while ((hw.r.pending > 0 || id < 0) && now_s() < deadline) {
		int n = epoll_wait(ep, evs, 1024, 100);
		for (int i = 0; i < n; i++) {
			struct hconn *c = evs[i].data.ptr;
			int rc = conn_event(c, evs[i].events);
			if (c != &pub) {
				if (rc != 0)
					herd_answer(c, rc);
				continue;
			}
			if (rc == 0)
				continue;
			const char *p = rc > 0 ? strstr(pub.buf + pub.hdr_end, "\"id\":") : NULL;
			if (rc < 0 || pub.status != 201 || !p)
				die("publish of round %d answered %d: %.200s", round, pub.status,
				    pub.buf ? pub.buf + pub.hdr_end : strerror(pub.err));
			id = strtol(p + 5, NULL, 10);
			hw.round_id = id;
			conn_close(&pub);
		}
	}
	free(pub.buf);
	free(pub.req);
	return id;
}

static void run_herd(void)
{
	long N = opt.n;
	subs = calloc((size_t)N, sizeof *subs);
	hw.cursor = calloc((size_t)N, sizeof *hw.cursor);
	for (long i = 0; i < N; i++) {
		subs[i] = (struct hconn){ .fd = -1, .kind = K_SUB, .id = (int)i };
		hw.cursor[i] = -1;
	}
	on_other = early;
	long base = ready_count_of(0, 5);
	if (base < 0)
		die("readiness URL %s gave no count", opt.ready_path);
	for (long i = 0; i < N; i++) {
		herd_request(&subs[i]);
		if (conn_open(&subs[i]) < 0)
			die("subscriber %ld: %s", i, strerror(subs[i].err));
	}
	long total_bad = 0;
	printf("{\"measure\":\"herd\",\"n\":%ld,\"rounds\":[", N);
	for (int round = 1; round <= opt.rounds; round++) {
		/* Every subscriber held (again) before the publish. */
		on_other = early;
		double since = now_s();
		long cnt = -1;
		while (now_s() - since < opt.ready_timeout) {
			cnt = ready_count_of(0, 5);
			if (cnt - base >= N - subs_failed - subs_early)
				break;
			struct epoll_event evs[256];
			int n = epoll_wait(ep, evs, 256, 20);
			for (int i = 0; i < n; i++) {
				struct hconn *c = evs[i].data.ptr;
				int rc = conn_event(c, evs[i].events);
				if (rc != 0)
					early(c, rc);
			}
		}
		long held = cnt - base;
		hw.r = (struct herd_round){ 0 };
		hw.round_id = -1;
		for (long i = 0; i < N; i++)
			if (subs[i].state == S_READING || subs[i].state == S_WRITING ||
			    subs[i].state == S_CONNECTING)
				hw.r.pending++;
		long waiting = hw.r.pending;
		on_other = herd_answer;
		long id = herd_publish(round);
		qsort(hw.r.lat.v, hw.r.lat.n, sizeof(double), cmp_double);
		long bad = waiting - hw.r.right + (N - waiting);
		total_bad += bad;
		char st[256] = "";
		size_t o = 0;
		for (int i = 0; i < 8 && hw.r.nstatus[i]; i++)
			o += (size_t)snprintf(st + o, sizeof st - o, "%s\"%d\":%ld", o ? "," : "",
					      hw.r.status[i], hw.r.nstatus[i]);
		printf("%s{\"round\":%d,\"held\":%ld,\"waiting\":%ld,\"published_id\":%ld,"
		       "\"right\":%ld,\"non200\":%ld,\"statuses\":{%s},\"foreign\":%ld,"
		       "\"without_message\":%ld,\"bad_cursor\":%ld,\"failed\":%ld,"
		       "\"unanswered\":%ld,\"early\":%ld,\"resubscribe_failed\":%ld,",
		       round > 1 ? "," : "", round, held, waiting, id, hw.r.right, hw.r.non200, st,
		       hw.r.foreign, hw.r.no_msg, hw.r.bad_cursor, hw.r.failed, hw.r.pending, subs_early,
		       hw.r.resub_failed);
		jnum(stdout, "p50_ms", pct(&hw.r.lat, 50), 3, true);
		jnum(stdout, "p99_ms", pct(&hw.r.lat, 99), 3, true);
		jnum(stdout, "max_ms", pct(&hw.r.lat, 100), 3, false);
		printf("}");
		if (!opt.quiet)
			fprintf(stderr, "bench: herd round %d: %ld of %ld held answered right "
				"(non-200 %ld, not its own %ld, without the message %ld, bad cursor "
				"%ld, failed %ld, unanswered %ld)\n", round, hw.r.right, waiting,
				hw.r.non200, hw.r.foreign, hw.r.no_msg, hw.r.bad_cursor, hw.r.failed,
				hw.r.pending);
		free(hw.r.lat.v);
		hw.r.lat = (struct samples){ 0 };
		subs_early = 0;
		subs_failed = 0;
	}
	printf("],\"bad\":%ld}\n", total_bad);
	fflush(stdout);
	for (long i = 0; i < N; i++) {
		conn_close(&subs[i]);
		free(subs[i].buf);
		free(subs[i].req);
	}
	free(subs);
	free(hw.cursor);
	exit(total_bad ? 1 : 0);
}

/* ------------------------------------------------------------------- main */

/* Raises RLIMIT_NOFILE to its hard limit; as root, first the hard limit to at
 * least 65536 (refused without CAP_SYS_RESOURCE, e.g. in some containers).
 * Warns when fewer than need descriptors are available. */
static void raise_nofile(long need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	long want = need > 65536 ? need : 65536;
	if (rl.rlim_max != RLIM_INFINITY && (long)rl.rlim_max < want && geteuid() == 0) {
		long nr_open = 1048576;
		FILE *f = fopen("/proc/sys/fs/nr_open", "r");
		if (f) {
			if (fscanf(f, "%ld", &nr_open) != 1)
				nr_open = 1048576;
			fclose(f);
		}
		rlim_t v = (rlim_t)(want < nr_open ? want : nr_open);
		struct rlimit r2 = { v, v };
		if (setrlimit(RLIMIT_NOFILE, &r2) == 0)
			rl = r2;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need)
		fprintf(stderr, "bench: warning: RLIMIT_NOFILE is %ld (hard %ld), need %ld\n",
			(long)rl.rlim_cur, (long)rl.rlim_max, need);
}

static void usage(FILE *f)
{
	fputs(
"usage: bench fanout|rate|herd [options]\n"
"  -p, --port PORT          web server port on 127.0.0.1 (required)\n"
"      --host ADDR          IPv4 address (default 127.0.0.1; loopback only)\n"
"      --label NAME         name of what is measured, in the output (default server)\n"
"      --preset comet|nchan default paths for comet-fcgi at /comet/ or nchan at /\n"
"  fanout:\n"
"  -n N                     subscribers (default 100)\n"
"      --sub-path PATH      long-poll subscriber request\n"
"      --pub-path PATH      the publish request (POST)\n"
"      --ready-path PATH    GET answering the server's subscriber count\n"
"      --ready-key KEY      text right before that count (e.g. '\"waiting\"', 'subscribers:')\n"
"      --batch B            subscribers opened before each readiness poll (default 500)\n"
"      --ready-timeout S    give up opening after S s without progress (default 20)\n"
"      --answer-timeout S   wait at most S s for the answers (default 30)\n"
"      --mem LABEL:PID,...  processes whose memory is read before and while N are held\n"
"      --mem-match LABEL:NAME,...  the same, found by /proc/PID/comm\n"
"      --sid SID            --mem-match only processes of this session\n"
"      --rate-while-held S  run the rate measurement for S s while N are held\n"
"      --rate-path PATH     publish path for that rate run (another channel)\n"
"      --h2 S               subscribers as HTTP/2 streams (cleartext, prior\n"
"                           knowledge), S per connection (lighttpd allows 8)\n"
"      --h2-port PORT       their port, when not --port (nginx: a listen ... http2)\n"
"      --check              an answer counts only if it carries the message\n"
"      --sse                subscribers are event streams (Accept:\n"
"                           text/event-stream); a subscriber's answer is the\n"
"                           event that carries the message\n"
"      --form-topic T       publish as a Mercure hub takes it: a form\n"
"                           topic=T&data=<the message> (T URL-encoded by you)\n"
"  herd (-n, --sub-path, --pub-path, --ready-*, --answer-timeout as fanout):\n"
"      --rounds R           publishes (default 3); every subscriber asks again,\n"
"                           with its own JSONP callback and cursor, the moment\n"
"                           it is answered; exit 1 unless every answer was its own\n"
"      --fresh              each request on a new connection (default: keep-alive)\n"
"  rate:\n"
"  -c C                     connections (default 16)\n"
"  -d D                     seconds (default 5)\n"
"      --pub-path PATH      the publish request (POST)\n"
"      --pub-batch K        K messages per request, as a JSON array of\n"
"                           {\"channel\",\"data\"} (comet-fcgi's batch; --pub-path\n"
"                           without a channel); an answer must hold K acks\n"
"      --batch-channel C    their channel (default rate)\n"
"      --pusher ID:KEY:SECRET  publish through the Pusher HTTP API instead:\n"
"                           POST /apps/ID/events, each signed (with --pub-batch K,\n"
"                           batch_events of K events)\n"
"  both:\n"
"      --peer PORT[:H2PORT] another server sharing the channels (repeatable,\n"
"                           up to 3): fanout opens N subscribers on each and\n"
"                           publishes to -p, with latencies also by server;\n"
"                           rate's connections alternate between the servers\n"
"      --body-size B        bytes per message (default 32)\n"
"      --header 'K: V'      extra header on publish/readiness requests\n"
"  -q                       JSON lines only\n", f);
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	opt.mode = argv[1];
	if (strcmp(opt.mode, "fanout") && strcmp(opt.mode, "rate") && strcmp(opt.mode, "herd"))
		die("unknown mode %s (fanout, rate or herd)", opt.mode);
	const char *preset = "comet";
	/* First pass for the preset and --sid, which others depend on. */
	for (int i = 2; i < argc - 1; i++) {
		if (strcmp(argv[i], "--preset") == 0)
			preset = argv[i + 1];
		else if (strcmp(argv[i], "--sid") == 0)
			match_sid = strtol(argv[i + 1], NULL, 10);
	}
	if (strcmp(preset, "comet") == 0) {
		opt.sub_path = "/comet/sub?channel=bench&timeout=60";
		opt.fanout_pub_path = "/comet/pub?channel=bench";
		opt.pub_path = "/comet/pub?channel=rate";
		opt.ready_path = "/comet/stats";
		opt.ready_key = "\"waiting\"";
	} else if (strcmp(preset, "nchan") == 0) {
		opt.sub_path = "/sub?channel=bench";
		opt.fanout_pub_path = "/pub?channel=bench";
		opt.pub_path = "/pub?channel=rate";
		opt.ready_path = "/nchan_status";
		opt.ready_key = "subscribers:";
	} else {
		die("unknown preset %s", preset);
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
#define ARG() (i + 1 < argc ? argv[++i] : (die("%s needs a value", a), ""))
		if (!strcmp(a, "-p") || !strcmp(a, "--port"))
			opt.port = atoi(ARG());
		else if (!strcmp(a, "--host"))
			opt.host = ARG();
		else if (!strcmp(a, "--label"))
			opt.label = ARG();
		else if (!strcmp(a, "--preset") || !strcmp(a, "--sid"))
			ARG();
		else if (!strcmp(a, "-n"))
			opt.n = atol(ARG());
		else if (!strcmp(a, "-c"))
			opt.conns = atoi(ARG());
		else if (!strcmp(a, "-d"))
			opt.duration = atof(ARG());
		else if (!strcmp(a, "--sub-path"))
			opt.sub_path = ARG();
		else if (!strcmp(a, "--pub-path")) {
			opt.pub_path = ARG();
			opt.fanout_pub_path = opt.pub_path;
		} else if (!strcmp(a, "--ready-path"))
			opt.ready_path = ARG();
		else if (!strcmp(a, "--ready-key"))
			opt.ready_key = ARG();
		else if (!strcmp(a, "--batch"))
			opt.batch = atoi(ARG());
		else if (!strcmp(a, "--ready-timeout"))
			opt.ready_timeout = atof(ARG());
		else if (!strcmp(a, "--answer-timeout"))
			opt.answer_timeout = atof(ARG());
		else if (!strcmp(a, "--mem"))
			parse_mem_pids(ARG());
		else if (!strcmp(a, "--mem-match"))
			parse_mem_match(ARG());
		else if (!strcmp(a, "--rate-while-held"))
			opt.rate_while_held = atof(ARG());
		else if (!strcmp(a, "--rate-path"))
			opt.rate_pub_path = ARG();
		else if (!strcmp(a, "--body-size"))
			opt.body_size = atoi(ARG());
		else if (!strcmp(a, "--header"))
			opt.headers = ARG();
		else if (!strcmp(a, "--h2"))
			opt.h2 = atoi(ARG());
		else if (!strcmp(a, "--h2-port"))
			opt.h2_port = atoi(ARG());
		else if (!strcmp(a, "--check"))
			opt.check = true;
		else if (!strcmp(a, "--peer")) {
			/* PORT or PORT:H2PORT */
			const char *v = ARG();
			char *end;
			if (nhosts == MAX_HOSTS)
				die("at most %d --peer", MAX_HOSTS - 1);
			peer_port[nhosts] = (int)strtol(v, &end, 10);
			peer_h2_port[nhosts] = *end == ':' ? (int)strtol(end + 1, &end, 10) : 0;
			if (*end || peer_port[nhosts] <= 0 || peer_port[nhosts] > 65535 ||
			    peer_h2_port[nhosts] < 0 || peer_h2_port[nhosts] > 65535)
				die("--peer wants PORT or PORT:H2PORT, got %s", v);
			nhosts++;
		} else if (!strcmp(a, "--pub-batch"))
			opt.pub_batch = atoi(ARG());
		else if (!strcmp(a, "--batch-channel"))
			opt.batch_channel = ARG();
		else if (!strcmp(a, "--pusher")) {
			/* ID:KEY:SECRET */
			opt.pusher_id = strdup(ARG());
			opt.pusher_key = strchr(opt.pusher_id, ':');
			opt.pusher_secret = opt.pusher_key ? strchr(opt.pusher_key + 1, ':') : NULL;
			if (!opt.pusher_secret)
				die("--pusher wants ID:KEY:SECRET");
			*opt.pusher_key++ = 0;
			*opt.pusher_secret++ = 0;
		} else if (!strcmp(a, "--fresh"))
			opt.fresh = true;
		else if (!strcmp(a, "--sse"))
			opt.sse = true;
		else if (!strcmp(a, "--form-topic"))
			opt.form_topic = ARG();
		else if (!strcmp(a, "--rounds"))
			opt.rounds = atoi(ARG());
		else if (!strcmp(a, "-q"))
			opt.quiet = true;
		else
			die("unknown option %s (see --help)", a);
	}
	if (opt.port <= 0 || opt.port > 65535)
		die("--port is required");
	if (opt.n < 1 || opt.n > 1000000 || opt.conns < 1 || opt.conns > 10000 ||
	    opt.duration <= 0 || opt.duration > 3600 || opt.batch < 1 ||
	    opt.body_size < 1 || opt.body_size > 1 << 20 || opt.h2 < 0 || opt.h2 > 256 ||
	    opt.h2_port < 0 || opt.h2_port > 65535 || opt.pub_batch < 0 || opt.pub_batch > 1000 || opt.rounds < 1 ||
	    strlen(opt.batch_channel) > 128 || strpbrk(opt.batch_channel, "\"\\"))
		die("option out of range");
	peer_port[0] = opt.port;
	peer_h2_port[0] = opt.h2_port;
	for (int h = 0; h < nhosts; h++) {
		struct sockaddr_in *t = &targets[h];
		memset(t, 0, sizeof *t);
		t->sin_family = AF_INET;
		t->sin_port = htons((uint16_t)peer_port[h]);
		if (inet_pton(AF_INET, opt.host, &t->sin_addr) != 1)
			die("bad --host %s", opt.host);
		if ((ntohl(t->sin_addr.s_addr) >> 24) != 127)
			die("only loopback targets (127.0.0.0/8) are allowed");
		h2_targets[h] = *t;
		if (peer_h2_port[h])
			h2_targets[h].sin_port = htons((uint16_t)peer_h2_port[h]);
		snprintf(host_hdrs[h], sizeof host_hdrs[h], "%s:%d", opt.host, peer_port[h]);
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile((opt.h2 ? opt.n / opt.h2 + 1 : opt.n) * nhosts + opt.conns + 64);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	if (!strcmp(opt.mode, "rate")) {
		struct rate_result r;
		run_rate(opt.pub_path, opt.conns, opt.duration, &r);
		print_rate("rate", 0, opt.duration, &r);
		free(r.lat.v);
		for (int h = 0; h < MAX_HOSTS; h++)
			free(r.host_lat[h].v);
		return r.ok > 0 ? 0 : 1;
	}
	if (!strcmp(opt.mode, "herd")) {
		if (opt.h2 || nhosts > 1)
			die("herd is HTTP/1.1 on one server");
		run_herd();
	}
	/* The message's text (make_body's), which an event must carry. */
	opt.sse_mark = make_body(opt.body_size, 0);
	run_fanout();
	free(opt.sse_mark);
	return 0;
}
