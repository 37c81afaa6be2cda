// Shared with monitor.go: keep the two in step (monitor_test.go checks).
#ifndef NOOK_MONITOR_H
#define NOOK_MONITOR_H

#define MONITOR_ARG0 "nook-container-monitor"

// The monitor's descriptors, as the invoker passes them.
#define FD_CONFIG 3 // in: u32 length (LE) + the init's configuration, then one byte "go"
#define FD_REPORT 4 // out: "O<pid> <starttime>\n", or "E" + the init's JSON error
#define FD_NETNS 5  // the container's network namespace (netns=1)
#define FD_HOLDER 6 // a pidfd of the holder's pause process (holder=1)
#define FD_EXE 7    // a read-only handle of nook's binary, for the init

// The container's init (runner/init_linux.go).
#define INIT_ARG0 "nook-container-init"
#define INIT_FD_CONFIG 3
#define INIT_FD_STATUS 4
#define INIT_FD_CONSOLE 5
#define INIT_FD_NETNS 6

#endif
