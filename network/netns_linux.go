package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nook-containers/nook/userns"
)

// openNS opens a network namespace file; "" opens the caller's own
// namespace (the host's, for a joined nook or real root).
func openNS(path string) (netns.NsHandle, error) {
	if path == "" {
		h, err := netns.GetFromPath("/proc/self/ns/net")
		if err != nil {
			return netns.None(), fmt.Errorf("opening this process's network namespace: %w", err)
		}
		return h, nil
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(h), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		h.Close()
		return netns.None(), fmt.Errorf("%s is not a network namespace (was its holder or container stopped?)", path)
	}
	return h, nil
}

// nsID identifies a namespace (device and inode of its nsfs file), so that
// a lease naming /proc/PID/ns/net is not taken for alive when the pid has
// been reused.
func nsID(path string) (dev, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, err
	}
	return uint64(st.Dev), st.Ino, nil
}

// leaseAlive reports whether the namespace a lease was made for still exists.
func leaseAlive(l *Lease) bool {
	if l.NetNS == "" {
		return false
	}
	dev, ino, err := nsID(l.NetNS)
	return err == nil && dev == l.NetNSDev && ino == l.NetNSIno
}

// inNS runs fn on nook's namespace thread, switched into ns (fn runs
// directly when ns is not open). Sockets made in fn stay in ns.
//
// Why one long-lived thread: a rootless nook may enter the holder's and
// containers' namespaces but not return to the host's (that takes
// privilege over the host's user namespace), so a thread that entered one
// must never run other goroutines again. Ending such threads instead would
// fire the Pdeathsig of any child that the same OS thread forked (the
// runner's foreground container), so the thread is kept, locked, for the
// life of the process, and serves every switch. fn must not call inNS.
func inNS(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	return onNSThread(ns, fn)
}

// onNSThread runs fn on the namespace thread, after switching it into ns
// when ns is open (else in whatever namespace it was left).
func onNSThread(ns netns.NsHandle, fn func() error) error {
	nsThread.once.Do(func() {
		nsThread.reqs = make(chan nsRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: see above
			home, _ := netns.Get()
			for r := range nsThread.reqs {
				var err error
				if r.ns.IsOpen() {
					err = unix.Setns(int(r.ns), unix.CLONE_NEWNET)
				}
				if err != nil {
					err = fmt.Errorf("entering a network namespace: %w", err)
				} else {
					err = r.fn()
				}
				r.done <- err
				home = park(home)
			}
		}()
	})
	done := make(chan error, 1)
	nsThread.reqs <- nsRequest{ns: ns, fn: fn, done: done}
	return <-done
}

// park moves the namespace thread out of the namespace it last entered,
// so that it does not keep a container's namespace (and its veth pair)
// alive: back home, or, when that is refused (rootless, home is the
// host's), into an empty namespace of its own, which becomes home.
func park(home netns.NsHandle) netns.NsHandle {
	if home.IsOpen() && unix.Setns(int(home), unix.CLONE_NEWNET) == nil {
		return home
	}
	if p := parkPath.Load(); p != nil {
		if h, err := netns.GetFromPath(*p); err == nil {
			if unix.Setns(int(h), unix.CLONE_NEWNET) == nil {
				if home.IsOpen() {
					home.Close()
				}
				return h
			}
			h.Close()
		}
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return home // stays where it is; the next request moves it anyway
	}
	if home.IsOpen() {
		home.Close()
	}
	h, err := netns.Get()
	if err != nil {
		return netns.None()
	}
	return h
}

// parkPath is a namespace the thread may rest in when it cannot go home:
// the holder's, which outlives every container (set by New, rootless).
var parkPath atomic.Pointer[string]

var nsThread struct {
	once sync.Once
	reqs chan nsRequest
}

type nsRequest struct {
	ns   netns.NsHandle
	fn   func() error
	done chan error
}

// nlHandle opens a netlink handle whose sockets live in ns. (netlink's own
// NewHandleAt switches the calling thread back afterwards, which fails
// rootless and leaves the thread in the wrong namespace.)
func nlHandle(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := inNS(ns, func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	return h, nil
}

// sysctl writes a value under /proc/sys/net for the calling thread's
// network namespace (call inside inNS).
func sysctl(key, value string) error {
	// /proc/sys/net shows the namespace of the thread that opens it.
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	cur, err := os.ReadFile(p)
	if err == nil && strings.TrimSpace(string(cur)) == value {
		return nil
	}
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting %s=%s: %w", key, value, err)
	}
	return nil
}

type route struct {
	p   netip.Prefix
	dev string
}

// outerRoutes lists the IPv4 routes of a namespace ("" = the caller's).
func outerRoutes(path string) ([]route, error) {
	ns, err := openNS(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := nlHandle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	rs, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	names := map[int]string{}
	var out []route
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		p, ok := netipPrefix(r.Dst.IP, r.Dst.Mask)
		if !ok {
			continue
		}
		dev, ok := names[r.LinkIndex]
		if !ok {
			if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
				dev = l.Attrs().Name
			}
			names[r.LinkIndex] = dev
		}
		out = append(out, route{p: p, dev: dev})
	}
	return out, nil
}

// NetNSDir is where NewNetNS keeps namespace files: in the per-user runtime
// directory (rootless, inside the holder's mount namespace, so they last as
// long as the holder).
func NetNSDir() string { return filepath.Join(userns.RuntimeDir(), "netns") }

// NewNetNS creates an empty network namespace for a container, owned by
// the caller's user namespace, and pins it with a bind mount at
// NetNSDir()/name. The runner may create the namespace itself instead
// (unshare(CLONE_NEWNET) in the container's init) and pass
// /proc/PID/ns/net to Attach; see the package documentation.
func NewNetNS(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return "", fmt.Errorf("invalid network namespace name %q", name)
	}
	dir := NetNSDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("creating network namespace file %s: %w", p, err)
	}
	f.Close()
	// The namespace thread unshares (leaving whatever namespace it was
	// in) and pins its new namespace.
	err = onNSThread(netns.None(), func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
		}
		src := "/proc/thread-self/ns/net"
		if err := unix.Mount(src, p, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pinning the network namespace at %s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(p)
		return "", err
	}
	return p, nil
}

// CreateNetNS creates an empty network namespace, owned by the caller's
// user namespace, and returns a handle to it (the namespace lives while
// the handle is open or a process is in it). It is made on nook's
// namespace thread, so no OS thread is left in it or discarded (a
// discarded thread fires the Pdeathsig of children it forked). Close the
// handle before Detach once the container has exited: then the kernel
// removes the container's veth pair in the background, and Detach need
// not wait ~20 ms for it.
func CreateNetNS() (*os.File, error) {
	var f *os.File
	err := onNSThread(netns.None(), func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("creating a network namespace: %w", err)
		}
		var err error
		f, err = os.OpenFile("/proc/thread-self/ns/net", os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening the new network namespace: %w", err)
		}
		return nil
	})
	return f, err
}

// DeleteNetNS unpins and removes a namespace file made by NewNetNS. The
// namespace itself ends when no process is left in it. Deleting a missing
// file is not an error.
func DeleteNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return nil
}

func netipPrefix(ip net.IP, mask net.IPMask) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ip)
	ones, bits := mask.Size()
	if !ok || bits == 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}
