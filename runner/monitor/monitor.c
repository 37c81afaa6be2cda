// The per-container monitor of a detached container (nook's conmon).
//
// It is nook re-executed with argv[0] "nook-container-monitor", and it runs
// entirely in this constructor, before the Go runtime starts: a Go runtime
// with nook's packages initialised costs 11 MiB or more of resident memory
// (its heap, and the 2 MiB page-cache folios of the binary that the runtime
// touches), while this loop stays near 2 MiB for the life of the container.
// Everything that needs Go (starting the network, cleaning up, probing
// health) is done by nook processes it starts for a moment.
//
// What it does:
//   - starts the container's init (nook's init, from the sealed handle the
//     invoker passes) as its child, in new namespaces, hands it the
//     configuration, and reports the outcome of the first start;
//   - writes the container's stdout and stderr to a log file in docker's
//     json-file format, one JSON line per record, with size-capped rotation;
//   - records the container's state (pid, start and finish times, exit code,
//     restart count) in DIR/monitor.json, replaced atomically;
//   - applies the restart policy with docker's back-off (100 ms doubling to
//     1 minute, reset after 10 s of running);
//   - runs the health check on schedule (through "nook container
//     healthcheck", which records the result);
//   - kills the container when the user namespace holder it runs in dies;
//   - exits when the container has stopped for good, after running "nook
//     container cleanup" (network, mounts, --rm).
//
// Requests from other invocations: a file DIR/stopped (stop, kill) or
// DIR/removing (rm -f) says the container must not be restarted; SIGUSR1
// tells the monitor to look at them now. SIGUSR2 from the health check
// says the container is no longer "starting".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "monitor.h"

extern char **environ;

enum { POLICY_NO, POLICY_ALWAYS, POLICY_UNLESS_STOPPED, POLICY_ON_FAILURE };

static struct {
	const char *dir, *id, *log, *cgroup;
	long long log_max;	// bytes; 0: no limit
	int log_files;		// files kept, the live one included
	int policy, retries;	// retries: on-failure's maximum, 0: none
	int tty, stdin_open;
	int netns, holder;	// FD_NETNS and FD_HOLDER were passed
	long long hc_interval, hc_start_period, hc_start_interval; // ms; interval 0: no health check
	long generation;
	char **helper;		// nook and its global flags, for helpers
	int nhelper;
} cfg;

static char *init_cfg;		// the init's configuration, as the invoker sent it
static uint32_t init_cfg_len;

static pid_t init_pid, health_pid;
static unsigned long long init_start;
static struct timespec started_at, finished_at;
static int exit_code, restart_count, holder_gone, stop_asked;
static int health_settled;	// the health check left "starting" (SIGUSR2 from it)
static long long backoff_ms;
static char state_error[256];

static int log_fd = -1;
static long long log_size;

static int sig_fd = -1, backoff_fd = -1, health_fd = -1;

// One output stream of the container.
struct stream {
	int fd;
	const char *name;
	size_t len;
	char buf[16 * 1024];
};
static struct stream out_s = {.fd = -1, .name = "stdout"}, err_s = {.fd = -1, .name = "stderr"};
static int stdin_w = -1;	// kept open: -i without a terminal waits for input that never comes

static void warnx(const char *what)
{
	char b[512];
	int n = snprintf(b, sizeof b, "nook monitor %.12s: %s: %s\n", cfg.id ? cfg.id : "?", what, strerror(errno));
	if (n > 0)
		(void)!write(2, b, (size_t)n);
}

static int path_in_dir(char *buf, size_t len, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", cfg.dir, name);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

static int flag_file(const char *name)
{
	char p[PATH_MAX];
	return path_in_dir(p, sizeof p, name) == 0 && access(p, F_OK) == 0;
}

// ---- JSON -----------------------------------------------------------------

// json_escape writes s as the inside of a JSON string, as Go's encoding/json
// does (HTML characters and U+2028/9 escaped, invalid UTF-8 as U+FFFD).
// dst must hold 6*n bytes.
static size_t json_escape(char *dst, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i = 0;
	while (i < n) {
		unsigned c = s[i];
		if (c < 0x80) {
			switch (c) {
			case '"': dst[o++] = '\\'; dst[o++] = '"'; break;
			case '\\': dst[o++] = '\\'; dst[o++] = '\\'; break;
			case '\n': dst[o++] = '\\'; dst[o++] = 'n'; break;
			case '\r': dst[o++] = '\\'; dst[o++] = 'r'; break;
			case '\t': dst[o++] = '\\'; dst[o++] = 't'; break;
			default:
				if (c < 0x20 || c == '<' || c == '>' || c == '&') {
					memcpy(dst + o, "\\u00", 4);
					dst[o + 4] = hex[c >> 4];
					dst[o + 5] = hex[c & 15];
					o += 6;
				} else
					dst[o++] = (char)c;
			}
			i++;
			continue;
		}
		// A multi-byte sequence: copy it when valid.
		size_t len = 0;
		unsigned cp = 0, min = 0;
		if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
		int ok = len > 0 && i + len <= n;
		for (size_t k = 1; ok && k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				ok = 0;
			else
				cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)))
			ok = 0;
		if (!ok) {
			memcpy(dst + o, "\\ufffd", 6);
			o += 6;
			i++;
			continue;
		}
		if (cp == 0x2028 || cp == 0x2029) {
			memcpy(dst + o, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
			o += 6;
		} else {
			memcpy(dst + o, s + i, len);
			o += len;
		}
		i += len;
	}
	return o;
}

// rfc3339 formats t as Go's time.RFC3339Nano in UTC (nine digits kept).
static void rfc3339(char *b, size_t len, const struct timespec *t)
{
	struct tm tm;
	if (t->tv_sec == 0 && t->tv_nsec == 0) {
		snprintf(b, len, "0001-01-01T00:00:00Z");
		return;
	}
	gmtime_r(&t->tv_sec, &tm);
	snprintf(b, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, t->tv_nsec);
}

// ---- state ----------------------------------------------------------------

static unsigned long long proc_start(pid_t pid)
{
	char p[64], b[1024];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, b, sizeof b - 1);
	close(fd);
	if (n <= 0)
		return 0;
	b[n] = 0;
	char *s = strrchr(b, ')');
	if (!s)
		return 0;
	// Fields after the command: state is field 3, starttime field 22.
	int field = 2;
	for (s++; *s && field < 22; s++)
		if (*s == ' ')
			field++;
	return strtoull(s, NULL, 10);
}

// write_state replaces DIR/monitor.json (write a temporary file, rename).
static void write_state(const char *status)
{
	char b[2048], st[64], fin[64], esc[6 * sizeof state_error];
	char tmp[PATH_MAX], dst[PATH_MAX];
	rfc3339(st, sizeof st, &started_at);
	rfc3339(fin, sizeof fin, &finished_at);
	esc[json_escape(esc, (const unsigned char *)state_error, strlen(state_error))] = 0;
	int n = snprintf(b, sizeof b,
			 "{\"generation\":%ld,\"monitor\":%d,\"monitorStart\":%llu,\"status\":\"%s\",\"pid\":%d,"
			 "\"pidStart\":%llu,\"startedAt\":\"%s\",\"finishedAt\":\"%s\",\"exitCode\":%d,"
			 "\"restartCount\":%d,\"error\":\"%s\"}\n",
			 cfg.generation, (int)getpid(), proc_start(getpid()), status, (int)init_pid, init_start, st, fin,
			 exit_code, restart_count, esc);
	if (n <= 0 || (size_t)n >= sizeof b || path_in_dir(dst, sizeof dst, "monitor.json") < 0)
		return;
	snprintf(tmp, sizeof tmp, "%s/.monitor.json.%d", cfg.dir, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		warnx("writing the state");
		return;
	}
	if (write(fd, b, (size_t)n) != n || close(fd) < 0 || rename(tmp, dst) < 0) {
		warnx("writing the state");
		unlink(tmp);
	}
}

// ---- log ------------------------------------------------------------------

static void log_open(void)
{
	if (strcmp(cfg.log, "none") == 0)
		return;
	log_fd = open(cfg.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (log_fd < 0) {
		warnx("opening the log");
		return;
	}
	struct stat st;
	log_size = fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

// log_rotate renames LOG.N-1 to LOG.N ... LOG to LOG.1, keeping
// cfg.log_files files in all, and starts a new LOG (docker's json-file).
static void log_rotate(void)
{
	char from[PATH_MAX], to[PATH_MAX];
	close(log_fd);
	log_fd = -1;
	if (cfg.log_files <= 1) {
		if (truncate(cfg.log, 0) < 0)
			warnx("truncating the log");
	} else {
		for (int i = cfg.log_files - 1; i >= 1; i--) {
			if (i == 1)
				snprintf(from, sizeof from, "%s", cfg.log);
			else
				snprintf(from, sizeof from, "%s.%d", cfg.log, i - 1);
			snprintf(to, sizeof to, "%s.%d", cfg.log, i);
			if (rename(from, to) < 0 && errno != ENOENT)
				warnx("rotating the log");
		}
	}
	log_open();
}

static void log_record(struct stream *s, const char *data, size_t n)
{
	static char rec[6 * sizeof out_s.buf + 128];
	char ts[64];
	struct timespec now;
	if (log_fd < 0 || n == 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	rfc3339(ts, sizeof ts, &now);
	size_t o = 0;
	memcpy(rec, "{\"log\":\"", 8);
	o = 8;
	o += json_escape(rec + o, (const unsigned char *)data, n);
	o += (size_t)snprintf(rec + o, sizeof rec - o, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", s->name, ts);
	if (cfg.log_max > 0 && log_size >= cfg.log_max)
		log_rotate();
	if (log_fd < 0)
		return;
	size_t done = 0;
	while (done < o) {
		ssize_t w = write(log_fd, rec + done, o - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			warnx("writing the log");
			return;
		}
		done += (size_t)w;
	}
	log_size += (long long)o;
}

// utf8_cut is where a full buffer may be cut without splitting a character.
static size_t utf8_cut(const char *b, size_t n)
{
	for (size_t back = 1; back <= 3 && back <= n; back++) {
		unsigned char c = (unsigned char)b[n - back];
		if ((c & 0xc0) == 0x80)
			continue;
		size_t need = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
		return need > back ? n - back : n;
	}
	return n;
}

// stream_read reads what the stream has and logs every complete line; a
// line longer than the buffer goes out in parts, as docker does. It
// returns 0 at the end of the stream.
static int stream_read(struct stream *s)
{
	for (;;) {
		ssize_t r = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (r <= 0) {	// EOF, or EIO from a terminal whose other side is gone
			log_record(s, s->buf, s->len);
			s->len = 0;
			close(s->fd);
			s->fd = -1;
			return 0;
		}
		s->len += (size_t)r;
		size_t start = 0;
		for (size_t i = 0; i < s->len; i++) {
			if (s->buf[i] == '\n') {
				log_record(s, s->buf + start, i + 1 - start);
				start = i + 1;
			}
		}
		if (start == 0 && s->len == sizeof s->buf) {
			start = utf8_cut(s->buf, s->len);
			log_record(s, s->buf, start);
		}
		memmove(s->buf, s->buf + start, s->len - start);
		s->len -= start;
	}
}

// ---- processes ------------------------------------------------------------

static void child_reset(void)
{
	sigset_t none;
	sigemptyset(&none);
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

// spawn runs nook (cfg.helper) with the extra arguments and returns its pid.
static pid_t spawn_helper(const char *a1, const char *a2, const char *a3)
{
	char *argv[64];
	int n = 0;
	for (int i = 0; i < cfg.nhelper && n < 56; i++)
		argv[n++] = cfg.helper[i];
	argv[n++] = (char *)a1;
	argv[n++] = (char *)a2;
	argv[n++] = (char *)a3;
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0) {
		warnx("starting a helper");
		return -1;
	}
	if (pid == 0) {
		child_reset();
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		if (null > 2)
			close(null);
		syscall(SYS_close_range, 3, ~0U, 0);
		execve(argv[0], argv, environ);
		_exit(127);
	}
	return pid;
}

static int move_high(int fd)
{
	return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 100);
}

static int write_all(int fd, const void *b, size_t n)
{
	const char *p = b;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

// receive_console takes the pty master the init sends.
static int receive_console(int sock)
{
	char b[16], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = b, .iov_len = sizeof b};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
}

// start_init starts the container's init and waits until it has executed
// the command. It returns 0, or the exit code to record with the init's
// report in report (a JSON object {"code":N,"message":"..."}).
static int start_init(int first, char *report, size_t rlen)
{
	int cfgp[2] = {-1, -1}, stp[2] = {-1, -1}, con[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
	int in_r = -1, code = 125;
	report[0] = 0;
	if (pipe2(cfgp, O_CLOEXEC) < 0 || pipe2(stp, O_CLOEXEC) < 0)
		goto sysfail;
	if (cfg.tty) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) < 0)
			goto sysfail;
	} else if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
		goto sysfail;
	if (cfg.stdin_open && !cfg.tty) {
		int inp[2];
		if (pipe2(inp, O_CLOEXEC) < 0)
			goto sysfail;
		in_r = inp[0];
		if (stdin_w >= 0)
			close(stdin_w);
		stdin_w = inp[1];
	} else
		in_r = open("/dev/null", O_RDWR | O_CLOEXEC); // with a terminal: stdout and stderr too, until the pty

	// The init joins the namespace the invoker made (FD_NETNS) or shares
	// the host's; it never gets a new one here.
	long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
	pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, 0);
	if (pid < 0)
		goto sysfail;
	if (pid == 0) {
		child_reset();
		setsid();
		// Move everything out of the way of 0..6 first.
		int fin = move_high(in_r), fout = fin, ferr = fin;
		if (!cfg.tty) {
			fout = move_high(outp[1]);
			ferr = move_high(errp[1]);
		}
		int fcfg = move_high(cfgp[0]), fst = move_high(stp[1]), fcon = move_high(con[1]),
		    fnet = cfg.netns ? move_high(FD_NETNS) : -1, fexe = move_high(FD_EXE);
		if (dup2(fin, 0) < 0 || dup2(fout, 1) < 0 || dup2(ferr, 2) < 0 || dup2(fcfg, INIT_FD_CONFIG) < 0 ||
		    dup2(fst, INIT_FD_STATUS) < 0)
			_exit(125);
		if (fcon >= 0)
			dup2(fcon, INIT_FD_CONSOLE);
		else
			close(INIT_FD_CONSOLE);
		if (fnet >= 0)
			dup2(fnet, INIT_FD_NETNS);
		else
			close(INIT_FD_NETNS);
		syscall(SYS_close_range, INIT_FD_NETNS + 1, 99, 0);
		char *argv[] = {INIT_ARG0, NULL};
		syscall(SYS_execveat, fexe, "", argv, environ, AT_EMPTY_PATH);
		dprintf(INIT_FD_STATUS, "{\"code\":125,\"message\":\"starting the container's init: %s\"}", strerror(errno));
		_exit(125);
	}
	init_pid = pid;
	close(cfgp[0]);
	close(stp[1]);
	cfgp[0] = stp[1] = -1;
	if (in_r >= 0)
		close(in_r);
	in_r = -1;
	if (con[1] >= 0)
		close(con[1]);
	con[1] = -1;
	if (!cfg.tty) {
		close(outp[1]);
		close(errp[1]);
		out_s.fd = outp[0];
		err_s.fd = errp[0];
		fcntl(out_s.fd, F_SETFL, O_NONBLOCK);
		fcntl(err_s.fd, F_SETFL, O_NONBLOCK);
		outp[0] = errp[0] = -1;
	}

	if (first) {
		// The invoker says go once the network is attached; EOF: it gave up.
		char go;
		ssize_t n;
		do
			n = read(FD_CONFIG, &go, 1);
		while (n < 0 && errno == EINTR);
		close(FD_CONFIG);
		if (n != 1) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			_exit(0);
		}
	}
	if (cfg.cgroup && *cfg.cgroup) {
		char p[PATH_MAX], b[32];
		snprintf(p, sizeof p, "%s/cgroup.procs", cfg.cgroup);
		int fd = open(p, O_WRONLY | O_CLOEXEC);
		int n = snprintf(b, sizeof b, "%d", (int)pid);
		if (fd < 0 || write(fd, b, (size_t)n) != n) {
			snprintf(report, rlen, "{\"code\":125,\"message\":\"moving the init into cgroup %s: %s\"}", cfg.cgroup,
				 strerror(errno));
			if (fd >= 0)
				close(fd);
			goto abort;
		}
		close(fd);
	}
	unsigned char hdr[4] = {init_cfg_len & 0xff, init_cfg_len >> 8 & 0xff, init_cfg_len >> 16 & 0xff,
				init_cfg_len >> 24 & 0xff};
	int wrote = write_all(cfgp[1], hdr, 4) == 0 && write_all(cfgp[1], init_cfg, init_cfg_len) == 0;
	if (wrote && cfg.tty) {
		int master = receive_console(con[0]);
		if (master >= 0) {
			struct winsize ws = {.ws_row = 24, .ws_col = 80};
			ioctl(master, TIOCSWINSZ, &ws);
			out_s.fd = master;
			fcntl(master, F_SETFL, O_NONBLOCK);
			char one = 1;
			wrote = write_all(cfgp[1], &one, 1) == 0;
		}
	}
	close(cfgp[1]);
	cfgp[1] = -1;
	if (con[0] >= 0)
		close(con[0]);
	con[0] = -1;
	// The status pipe is close-on-exec in the init: EOF with nothing
	// written means the command runs.
	size_t got = 0;
	for (;;) {
		ssize_t n = read(stp[0], report + got, rlen - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got >= rlen - 1)
			break;
	}
	close(stp[0]);
	stp[0] = -1;
	report[got] = 0;
	if (got == 0 && wrote) {
		clock_gettime(CLOCK_REALTIME, &started_at);
		init_start = proc_start(pid);
		return 0;
	}
	if (got == 0)
		snprintf(report, rlen, "{\"code\":125,\"message\":\"the container's init ended during start-up\"}");
	else {
		char *c = strstr(report, "\"code\":");
		if (c)
			code = atoi(c + 7);
	}
	// The init exits with the code it reported.
	waitpid(pid, NULL, 0);
	init_pid = 0;
	return code;

abort:
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	init_pid = 0;
	goto out;
sysfail:
	snprintf(report, rlen, "{\"code\":125,\"message\":\"starting the container: %s\"}", strerror(errno));
out:
	for (int *f = (int[]){cfgp[0], cfgp[1], stp[0], stp[1], con[0], con[1], outp[0], outp[1], errp[0], errp[1], in_r, -2};
	     *f != -2; f++)
		if (*f >= 0)
			close(*f);
	return code;
}

// ---- timers ---------------------------------------------------------------

static void arm(int fd, long long ms)
{
	struct itimerspec it = {0};
	if (ms > 0) {
		it.it_value.tv_sec = ms / 1000;
		it.it_value.tv_nsec = (ms % 1000) * 1000000;
	}
	timerfd_settime(fd, 0, &it, NULL);
}

static long long since_ms(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (now.tv_sec - t->tv_sec) * 1000LL + (now.tv_nsec - t->tv_nsec) / 1000000;
}

// next_probe is the delay to the next health check: the start interval
// while the start period lasts and the container is still "starting", the
// interval after (docker's rule).
static long long next_probe(void)
{
	if (!health_settled && cfg.hc_start_period > 0 && cfg.hc_start_interval > 0 &&
	    since_ms(&started_at) < cfg.hc_start_period)
		return cfg.hc_start_interval;
	return cfg.hc_interval;
}

// ---- main loop ------------------------------------------------------------

static int no_restart(void);

// should_restart applies the policy to an exit, as docker's restart
// manager: a manual stop, or a holder gone, ends it whatever the policy.
static int should_restart(long long ran_ms)
{
	if (no_restart())
		return 0;
	if (ran_ms >= 10000)
		backoff_ms = 0;
	backoff_ms = backoff_ms == 0 ? 100 : backoff_ms * 2;
	if (backoff_ms > 60000)
		backoff_ms = 60000;
	switch (cfg.policy) {
	case POLICY_ALWAYS:
	case POLICY_UNLESS_STOPPED:
		return 1;
	case POLICY_ON_FAILURE:
		return exit_code != 0 && (cfg.retries == 0 || restart_count < cfg.retries);
	}
	return 0;
}

static void finish(void)
{
	if (stdin_w >= 0)
		close(stdin_w);
	// Let the network namespace die first: the kernel then removes the
	// veth pair by itself, cheaper than the clean-up deleting it.
	if (cfg.netns)
		close(FD_NETNS);
	if (!flag_file("removing") && cfg.nhelper > 0) {
		// Release the network and the mounts (and --rm) through nook.
		pid_t p = spawn_helper("container", "cleanup", cfg.id);
		while (p > 0) {
			int st;
			pid_t w = waitpid(-1, &st, 0);
			if (w == p || (w < 0 && errno != EINTR))
				break;
		}
	}
	_exit(0);
}

static void on_exit_status(int status)
{
	clock_gettime(CLOCK_REALTIME, &finished_at);
	exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
	init_pid = 0;
	init_start = 0;
	arm(health_fd, 0);
}

// drain logs what the streams still hold once the container is gone.
static void drain(void)
{
	struct stream *ss[] = {&out_s, &err_s};
	for (int i = 0; i < 2; i++) {
		struct stream *s = ss[i];
		while (s->fd >= 0) {
			struct pollfd p = {.fd = s->fd, .events = POLLIN};
			if (poll(&p, 1, 1000) <= 0) {	// a writer outside the container: stop waiting
				log_record(s, s->buf, s->len);
				s->len = 0;
				close(s->fd);
				s->fd = -1;
				break;
			}
			stream_read(s);
		}
	}
}

// stopped handles the end of one run: record it, then restart or finish.
static void stopped(void)
{
	long long ran = since_ms(&started_at);
	drain();
	if (holder_gone)
		snprintf(state_error, sizeof state_error,
			 "the user namespace holder stopped while the container ran: start it again with 'nook start'");
	if (should_restart(ran)) {
		write_state("restarting");
		arm(backoff_fd, backoff_ms);
		return;
	}
	write_state("exited");
	finish();
}

static void restart_now(void)
{
	char report[4096];
	restart_count++;
	state_error[0] = 0;
	int code = start_init(0, report, sizeof report);
	if (code != 0) {
		// The command could not start again: an exit like any other.
		clock_gettime(CLOCK_REALTIME, &started_at);
		clock_gettime(CLOCK_REALTIME, &finished_at);
		exit_code = code;
		char *m = strstr(report, "\"message\":\"");
		if (m) {
			m += 11;
			size_t k = 0;
			while (m[k] && m[k] != '"' && k < sizeof state_error - 1)
				k++;
			memcpy(state_error, m, k);
			state_error[k] = 0;
		}
		stopped();
		return;
	}
	health_settled = 0;
	write_state("running");
	if (cfg.hc_interval > 0)
		arm(health_fd, next_probe());
}

// no_restart reports whether a stop or removal was asked for.
static int no_restart(void)
{
	return holder_gone || stop_asked || flag_file("stopped") || flag_file("removing");
}

// end_now ends the monitor between runs (in back-off).
static void end_now(void)
{
	arm(backoff_fd, 0);
	write_state("exited");
	finish();
}

static void signals(void)
{
	struct signalfd_siginfo si;
	while (read(sig_fd, &si, sizeof si) == sizeof si) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			for (;;) {
				int st;
				pid_t w = waitpid(-1, &st, WNOHANG);
				if (w <= 0)
					break;
				if (w == health_pid)
					health_pid = 0;
				else if (w == init_pid) {
					on_exit_status(st);
					stopped();
				}
			}
			break;
		case SIGUSR2:
			// The health check left "starting": the start interval ends.
			if (!health_settled && init_pid > 0) {
				health_settled = 1;
				if (cfg.hc_interval > 0)
					arm(health_fd, next_probe());
			}
			break;
		case SIGUSR1:
			// A stop or removal was asked for: in back-off, end now.
			if (init_pid == 0 && no_restart())
				end_now();
			break;
		default:
			// SIGTERM, SIGINT, SIGHUP, SIGQUIT to the monitor itself:
			// stop the container and do not restart it.
			stop_asked = 1;
			if (init_pid > 0)
				kill(init_pid, SIGKILL);
			else
				end_now();
		}
	}
}

static void loop(void)
{
	for (;;) {
		struct pollfd p[6] = {
			{.fd = sig_fd, .events = POLLIN},
			{.fd = backoff_fd, .events = POLLIN},
			{.fd = health_fd, .events = POLLIN},
			{.fd = cfg.holder && !holder_gone ? FD_HOLDER : -1, .events = POLLIN},
			{.fd = out_s.fd, .events = POLLIN},
			{.fd = err_s.fd, .events = POLLIN},
		};
		if (poll(p, 6, -1) < 0) {
			if (errno == EINTR)
				continue;
			warnx("poll");
			_exit(1);
		}
		if (p[4].revents)
			stream_read(&out_s);
		if (p[5].revents)
			stream_read(&err_s);
		if (p[3].revents) {
			// The holder died: its namespaces are gone for every
			// later invocation, so this container cannot be reached.
			holder_gone = 1;
			if (init_pid > 0)
				kill(init_pid, SIGKILL);
			else
				end_now();
		}
		if (p[2].revents) {
			uint64_t x;
			(void)!read(health_fd, &x, sizeof x);
			if (init_pid > 0 && health_pid <= 0)
				health_pid = spawn_helper("container", "healthcheck", cfg.id);
			if (init_pid > 0)
				arm(health_fd, next_probe());
		}
		if (p[1].revents) {
			uint64_t x;
			(void)!read(backoff_fd, &x, sizeof x);
			if (init_pid == 0) {
				if (no_restart())
					end_now();
				restart_now();
			}
		}
		if (p[0].revents)
			signals();
	}
}

static long long num(const char *s) { return strtoll(s, NULL, 10); }

// is_arg reports whether a is "key=..." and points *v at the value. The
// arguments are left as they are: ps and /proc/PID/cmdline show them.
static int is_arg(const char *a, const char *key, const char **v)
{
	size_t n = strlen(key);
	if (strncmp(a, key, n) != 0 || a[n] != '=')
		return 0;
	*v = a + n + 1;
	return 1;
}

static int parse_args(int argc, char **argv)
{
	cfg.log = "none";
	cfg.log_files = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		if (strcmp(a, "--") == 0) {
			cfg.helper = argv + i + 1;
			cfg.nhelper = argc - i - 1;
			break;
		}
		if (is_arg(a, "dir", &v)) cfg.dir = v;
		else if (is_arg(a, "id", &v)) cfg.id = v;
		else if (is_arg(a, "generation", &v)) cfg.generation = (long)num(v);
		else if (is_arg(a, "log", &v)) cfg.log = v;
		else if (is_arg(a, "log-max-size", &v)) cfg.log_max = num(v);
		else if (is_arg(a, "log-max-file", &v)) cfg.log_files = (int)num(v);
		else if (is_arg(a, "restart", &v)) {
			const char *c = strchr(v, ':');
			size_t n = c ? (size_t)(c - v) : strlen(v);
			if (c)
				cfg.retries = (int)num(c + 1);
			cfg.policy = n == 6 && !strncmp(v, "always", n) ? POLICY_ALWAYS
				     : n == 14 && !strncmp(v, "unless-stopped", n) ? POLICY_UNLESS_STOPPED
				     : n == 10 && !strncmp(v, "on-failure", n) ? POLICY_ON_FAILURE : POLICY_NO;
		} else if (is_arg(a, "tty", &v)) cfg.tty = num(v) != 0;
		else if (is_arg(a, "stdin", &v)) cfg.stdin_open = num(v) != 0;
		else if (is_arg(a, "netns", &v)) cfg.netns = num(v) != 0;
		else if (is_arg(a, "holder", &v)) cfg.holder = num(v) != 0;
		else if (is_arg(a, "health-interval", &v)) cfg.hc_interval = num(v);
		else if (is_arg(a, "health-start-period", &v)) cfg.hc_start_period = num(v);
		else if (is_arg(a, "health-start-interval", &v)) cfg.hc_start_interval = num(v);
		else if (is_arg(a, "cgroup", &v)) cfg.cgroup = v;
		else
			return -1;
	}
	return cfg.dir && cfg.id ? 0 : -1;
}

static int read_config(void)
{
	unsigned char hdr[4];
	size_t got = 0;
	while (got < 4) {
		ssize_t n = read(FD_CONFIG, hdr + got, 4 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	init_cfg_len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	if (init_cfg_len == 0 || init_cfg_len > 64u << 20)
		return -1;
	init_cfg = malloc(init_cfg_len);
	if (!init_cfg)
		return -1;
	for (got = 0; got < init_cfg_len;) {
		ssize_t n = read(FD_CONFIG, init_cfg + got, init_cfg_len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void monitor_main(int argc, char **argv)
{
	char report[4096];
	prctl(PR_SET_NAME, "nook-monitor");
	if (parse_args(argc, argv) < 0) {
		(void)!write(2, "nook monitor: bad arguments\n", 28);
		_exit(2);
	}
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	backoff_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	health_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	fcntl(FD_HOLDER, F_SETFD, FD_CLOEXEC);
	fcntl(FD_NETNS, F_SETFD, FD_CLOEXEC);
	if (sig_fd < 0 || backoff_fd < 0 || health_fd < 0 || read_config() < 0) {
		warnx("starting");
		_exit(2);
	}
	log_open();
	int code = start_init(1, report, sizeof report);
	if (code != 0) {
		// The invoker records the failure and cleans up.
		dprintf(FD_REPORT, "E%s", report);
		_exit(0);
	}
	write_state("running");
	dprintf(FD_REPORT, "O%d %llu\n", (int)init_pid, init_start);
	close(FD_REPORT);
	if (cfg.hc_interval > 0)
		arm(health_fd, next_probe());
	loop();
}

__attribute__((constructor)) static void nook_monitor(int argc, char **argv)
{
	if (argc < 1 || strcmp(argv[0], MONITOR_ARG0) != 0)
		return;
	monitor_main(argc, argv);
	_exit(0);
}
