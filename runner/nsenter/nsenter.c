// The nsenter constructor runs before the Go runtime starts, while the
// process is still single-threaded: setns(2) into a mount namespace is
// refused to a process whose threads share a file system context, and a
// pid namespace only takes effect for children, so neither can be done
// from Go. This is how `nook exec` enters a running container (the same
// steps as runc's libcontainer/nsenter/nsexec.c, smaller).
//
// `nook exec` starts nook (from the sealed copy of its binary, see
// runner/seal_linux.go) with _NOOK_NSENTER="SYNC;DETACH;FD:TYPE,...":
//
//  1. (this process, "X") waits for one byte on SYNC (the invoker has put
//     it in the container's cgroup meanwhile), joins each namespace FD
//     (mnt last), and clones with CLONE_PARENT: the new process, "W", is
//     in the container's pid namespace and a child of the invoker, which
//     can wait for it. X writes W's pid to SYNC and exits.
//  2. W forks "C": C returns from this constructor, starts the Go
//     runtime, applies the user, capabilities, seccomp filter and
//     environment, and execs the command (runner/nsenter_linux.go).
//  3. W forwards signals to C, waits for it and exits with its status
//     (128+N for signal N). If W goes away first (kill -9 of nook exec's
//     tree) or at once (DETACH=1, exec -d), C is reparented to the
//     container's pid 1, like every orphan of that pid namespace: it never
//     falls to a process outside the container.
//
// Every process here is non-dumpable: a process in the container cannot
// ptrace it or open its /proc/PID/exe (CVE-2019-5736; the binary is
// sealed as well).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define ENV_NSENTER "_NOOK_NSENTER"
#define FD_STATUS 4 // where the Go side reports a failure (JSON), see nsenter_linux.go
#define MAX_NS 8

static volatile pid_t child_pid = -1;

// fail reports on the sync descriptor and ends this process: the invoker
// turns the message into an error.
static void fail(int sync, const char *fmt, ...)
{
	char msg[512];
	int n, saved = errno;
	va_list ap;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof msg)
		n = sizeof msg - 1;
	dprintf(sync, "error %.*s: %s\n", n, msg, strerror(saved));
	_exit(125);
}

// status_fail reports through the status pipe, in the Go side's format,
// when W cannot start C (nothing else would tell the invoker).
static void status_fail(const char *what)
{
	dprintf(FD_STATUS, "{\"code\":125,\"message\":\"%s: %s\"}\n", what, strerror(errno));
	_exit(125);
}

static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static int ns_flag(const char *t)
{
	if (!strcmp(t, "mnt"))
		return CLONE_NEWNS;
	if (!strcmp(t, "pid"))
		return CLONE_NEWPID;
	if (!strcmp(t, "net"))
		return CLONE_NEWNET;
	if (!strcmp(t, "uts"))
		return CLONE_NEWUTS;
	if (!strcmp(t, "ipc"))
		return CLONE_NEWIPC;
	if (!strcmp(t, "cgroup"))
		return CLONE_NEWCGROUP;
	if (!strcmp(t, "user"))
		return CLONE_NEWUSER;
	return -1;
}

// waiter is W's life after it forked C.
static void waiter(pid_t c, int detach)
{
	struct sigaction sa;
	sigset_t all;
	int sig, st;

	// W holds nothing of the container's streams: they end when C ends.
	if (syscall(SYS_close_range, 0, ~0U, 0) < 0) {
		for (int fd = 0; fd < 1024; fd++)
			close(fd);
	}
	if (detach)
		_exit(0);
	child_pid = c;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = forward;
	sa.sa_flags = SA_RESTART;
	sigfillset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD)
			continue;
		sigaction(sig, &sa, NULL);
	}
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (;;) {
		pid_t w = waitpid(c, &st, 0);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			_exit(125);
		if (WIFEXITED(st))
			_exit(WEXITSTATUS(st));
		if (WIFSIGNALED(st))
			_exit(128 + WTERMSIG(st));
	}
}

__attribute__((constructor)) static void nook_nsenter(void)
{
	const char *spec = getenv(ENV_NSENTER);
	int fds[MAX_NS], n = 0, sync, detach, i;
	char types[MAX_NS][8];
	char *end;
	const char *p;
	char go;
	pid_t w, c;
	sigset_t all, old;

	if (spec == NULL)
		return;
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	// What ps shows in the container for the waiting process (the binary's
	// name is a descriptor number).
	prctl(PR_SET_NAME, "nook-exec", 0, 0, 0);

	sync = (int)strtol(spec, &end, 10);
	if (*end != ';')
		_exit(125);
	detach = (int)strtol(end + 1, &end, 10);
	if (*end != ';')
		_exit(125);
	for (p = end + 1; *p && n < MAX_NS;) {
		size_t len;
		fds[n] = (int)strtol(p, &end, 10);
		if (*end != ':')
			_exit(125);
		p = end + 1;
		len = strcspn(p, ",");
		if (len == 0 || len >= sizeof types[n])
			_exit(125);
		memcpy(types[n], p, len);
		types[n][len] = 0;
		n++;
		p += len;
		if (*p == ',')
			p++;
	}

	// The invoker says when to go on (after moving this process into the
	// container's cgroup, which children inherit).
	if (read(sync, &go, 1) != 1)
		_exit(125);

	for (i = 0; i < n; i++) {
		int flag = ns_flag(types[i]);
		if (flag < 0) {
			errno = EINVAL;
			fail(sync, "unknown namespace %s", types[i]);
		}
		if (setns(fds[i], flag) < 0)
			fail(sync, "joining the container's %s namespace", types[i]);
		close(fds[i]);
	}

	// CLONE_PARENT: W is the invoker's child, so that it can wait for it.
	// A raw clone with no new stack returns here in both, as fork does.
	w = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (w < 0)
		fail(sync, "cloning into the container's pid namespace");
	if (w > 0) {
		dprintf(sync, "pid %d\n", (int)w);
		_exit(0);
	}

	// W: in the container's pid namespace.
	close(sync);
	// Signals wait until W has its handlers; C gets the old mask back.
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	c = fork();
	if (c < 0)
		status_fail("forking the command's process");
	if (c == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return; // C: on into the Go runtime
	}
	waiter(c, detach);
}
