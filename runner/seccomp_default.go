package runner

// The default seccomp profile, as data: docker's default allow-list
// (moby profiles/seccomp/default.json), group by group, with the same
// argument rules and the same capability and architecture conditions.
// Everything not listed fails with EPERM.

// profileRule is one entry of a docker-format seccomp profile.
type profileRule struct {
	Names    []string      `json:"names,omitempty"`
	Name     string        `json:"name,omitempty"`
	Action   string        `json:"action"`
	ErrnoRet *uint         `json:"errnoRet,omitempty"`
	Args     []profileArg  `json:"args,omitempty"`
	Includes profileFilter `json:"includes,omitempty"`
	Excludes profileFilter `json:"excludes,omitempty"`
	Comment  string        `json:"comment,omitempty"`
}

type profileArg struct {
	Index    uint   `json:"index"`
	Value    uint64 `json:"value"`
	ValueTwo uint64 `json:"valueTwo,omitempty"`
	Op       string `json:"op"`
}

type profileFilter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// seccompProfile is docker's profile file format (--security-opt
// seccomp=PROFILE.json reads the same).
type seccompProfile struct {
	DefaultAction   string        `json:"defaultAction"`
	DefaultErrnoRet *uint         `json:"defaultErrnoRet,omitempty"`
	Architectures   []string      `json:"architectures,omitempty"`
	ArchMap         []any         `json:"archMap,omitempty"`
	Syscalls        []profileRule `json:"syscalls"`
}

func errnoPtr(v uint) *uint { return &v }

// cloneNamespaceFlags is CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET:
// without CAP_SYS_ADMIN, clone may not create namespaces.
const cloneNamespaceFlags = 0x7E020000

func defaultProfile() *seccompProfile {
	allow := func(names ...string) profileRule { return profileRule{Names: names, Action: "SCMP_ACT_ALLOW"} }
	withCap := func(capName string, names ...string) profileRule {
		r := allow(names...)
		r.Includes.Caps = []string{capName}
		return r
	}
	onArch := func(arches []string, names ...string) profileRule {
		r := allow(names...)
		r.Includes.Arches = arches
		return r
	}
	personality := func(v uint64) profileRule {
		r := allow("personality")
		r.Args = []profileArg{{Index: 0, Value: v, Op: "SCMP_CMP_EQ"}}
		return r
	}
	socket := allow("socket")
	socket.Args = []profileArg{{Index: 0, Value: 40 /* AF_VSOCK */, Op: "SCMP_CMP_NE"}}
	ptraceNew := allow("process_vm_readv", "process_vm_writev", "ptrace")
	ptraceNew.Includes.MinKernel = "4.8"
	clone := allow("clone")
	clone.Args = []profileArg{{Index: 0, Value: cloneNamespaceFlags, Op: "SCMP_CMP_MASKED_EQ"}}
	clone.Excludes = profileFilter{Caps: []string{"CAP_SYS_ADMIN"}, Arches: []string{"s390", "s390x"}}
	cloneS390 := allow("clone")
	cloneS390.Args = []profileArg{{Index: 1, Value: cloneNamespaceFlags, Op: "SCMP_CMP_MASKED_EQ"}}
	cloneS390.Includes.Arches = []string{"s390", "s390x"}
	cloneS390.Excludes.Caps = []string{"CAP_SYS_ADMIN"}
	// clone3 passes its flags in memory that seccomp cannot read: make
	// libc fall back to clone, which the rule above checks.
	clone3 := profileRule{Names: []string{"clone3"}, Action: "SCMP_ACT_ERRNO", ErrnoRet: errnoPtr(38 /* ENOSYS */)}
	clone3.Excludes.Caps = []string{"CAP_SYS_ADMIN"}

	return &seccompProfile{
		DefaultAction:   "SCMP_ACT_ERRNO",
		DefaultErrnoRet: errnoPtr(1 /* EPERM */),
		Syscalls: []profileRule{
			allow(defaultAllowed...),
			ptraceNew,
			socket,
			personality(0), personality(8), personality(131072), personality(131080), personality(4294967295),
			onArch([]string{"ppc64le"}, "sync_file_range2", "swapcontext"),
			onArch([]string{"arm", "arm64"}, "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"),
			onArch([]string{"amd64", "x32"}, "arch_prctl"),
			onArch([]string{"amd64", "x32", "x86"}, "modify_ldt"),
			onArch([]string{"s390", "s390x"}, "s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"),
			onArch([]string{"riscv64"}, "riscv_flush_icache"),
			withCap("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
			withCap("CAP_SYS_ADMIN", "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
				"lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl",
				"quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare"),
			clone, cloneS390, clone3,
			withCap("CAP_SYS_BOOT", "reboot"),
			withCap("CAP_SYS_CHROOT", "chroot"),
			withCap("CAP_SYS_MODULE", "delete_module", "init_module", "finit_module"),
			withCap("CAP_SYS_PACCT", "acct"),
			withCap("CAP_SYS_PTRACE", "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"),
			withCap("CAP_SYS_RAWIO", "iopl", "ioperm"),
			withCap("CAP_SYS_TIME", "settimeofday", "stime", "clock_settime", "clock_settime64"),
			withCap("CAP_SYS_TTY_CONFIG", "vhangup"),
			withCap("CAP_SYS_NICE", "get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
			withCap("CAP_SYSLOG", "syslog"),
			withCap("CAP_BPF", "bpf"),
			withCap("CAP_PERFMON", "perf_event_open"),
		},
	}
}

// defaultAllowed is the unconditional part of docker's allow-list.
var defaultAllowed = []string{
	"accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod",
	"chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
	"clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
	"connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl",
	"epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
	"execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
	"fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
	"fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
	"fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex",
	"futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
	"getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
	"getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
	"getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid",
	"getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
	"getxattr", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel",
	"ioctl", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get",
	"ioprio_set", "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc",
	"kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32",
	"lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek",
	"lsetxattr", "lstat", "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore",
	"mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
	"mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
	"mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync",
	"munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
	"openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
	"pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2",
	"prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2",
	"read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
	"recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
	"restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
	"rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
	"rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
	"sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
	"sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
	"select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
	"sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32",
	"setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid",
	"setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
	"setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
	"setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd",
	"signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64",
	"statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo",
	"tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
	"timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
	"timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
	"ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes",
	"vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
}
