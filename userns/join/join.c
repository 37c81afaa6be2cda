// The join constructor runs before the Go runtime starts, while the process
// is still single-threaded: setns(2) into a user namespace is refused to a
// multi-threaded caller, so this cannot be done from Go.
//
// When a rootless user's holder is alive, it enters the holder's user and
// mount namespaces and becomes uid 0 there. It does not enter the holder's
// network namespace: the holder runs with a detached network namespace, so a
// joined nook keeps the user's own network (loopback registries stay
// reachable) and containers get their network from the detached namespace.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENV_JOINED "_NOOK_JOINED"
#define ENV_HOLDER "_NOOK_HOLDER"
#define ENV_NOJOIN "_NOOK_NOJOIN"

static int holder_dir(char *buf, size_t len)
{
	const char *rd = getenv("XDG_RUNTIME_DIR");
	int n;
	if (rd != NULL && rd[0] == '/')
		n = snprintf(buf, len, "%s/nook/holder", rd);
	else
		n = snprintf(buf, len, "/tmp/nook-run-%u/holder", (unsigned)getuid());
	return (n > 0 && (size_t)n < len) ? 0 : -1;
}

// holder_alive reports whether a holder holds the lock in dir.
static int holder_alive(const char *dir)
{
	char p[4200];
	int fd, alive;
	snprintf(p, sizeof p, "%s/lock", dir);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	alive = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return alive;
}

static long read_pid(const char *dir)
{
	char p[4200], b[32];
	int fd;
	ssize_t n;
	snprintf(p, sizeof p, "%s/ready", dir);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, b, sizeof b - 1);
	close(fd);
	if (n <= 0)
		return -1;
	b[n] = 0;
	return strtol(b, NULL, 10);
}

// Outcome, read by join.go: the Go runtime takes its environment from the
// process's initial stack, so setenv(3) here would not be seen by Go.
static long joined_pid = 0;
static const char *failure = NULL;
static unsigned host_uid, host_gid;

long nook_joined_pid(void) { return joined_pid; }
const char *nook_join_failure(void) { return failure; }
unsigned nook_host_uid(void) { return host_uid; }
unsigned nook_host_gid(void) { return host_gid; }

static void fail(const char *what)
{
	// A half-joined process must not go on: report and let the Go side
	// start afresh without joining.
	fprintf(stderr, "nook: joining the user namespace: %s: %s\n", what, strerror(errno));
	failure = what;
}

__attribute__((constructor)) static void nook_join(void)
{
	char dir[4096], p[4200], cwd[4096];
	const char *nsnames[] = {"user", "mnt"};
	int fds[2] = {-1, -1};
	long pid;
	int i, havecwd;
	uid_t uid = getuid();
	gid_t gid = getgid();

	if (geteuid() == 0 || getenv(ENV_JOINED) || getenv(ENV_HOLDER) || getenv(ENV_NOJOIN))
		return;
	if (holder_dir(dir, sizeof dir) < 0 || !holder_alive(dir))
		return;
	pid = read_pid(dir);
	if (pid <= 0)
		return;
	for (i = 0; i < 2; i++) {
		snprintf(p, sizeof p, "/proc/%ld/ns/%s", pid, nsnames[i]);
		fds[i] = open(p, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			// The holder died between the lock check and now.
			if (i == 1)
				close(fds[0]);
			return;
		}
	}
	havecwd = getcwd(cwd, sizeof cwd) != NULL;
	if (setns(fds[0], CLONE_NEWUSER) < 0) {
		fail("setns user");
		goto out;
	}
	if (setns(fds[1], CLONE_NEWNS) < 0) {
		fail("setns mnt");
		goto out;
	}
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
		fail("setresuid");
		goto out;
	}
	// setns(CLONE_NEWNS) resets the working directory to the namespace's
	// root; the holder's mount namespace mirrors the host's, so the same
	// path leads back.
	if (havecwd && chdir(cwd) < 0)
		chdir("/");
	joined_pid = pid;
	host_uid = uid;
	host_gid = gid;
out:
	close(fds[0]);
	close(fds[1]);
}
