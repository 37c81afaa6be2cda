package runner

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Creating a network namespace costs several milliseconds (more while
// the kernel tears down earlier ones), which would be most of a short
// container's start. So it is made on a spare thread while the store
// creates the container, and the init joins it instead of cloning one.

// pendingNetNS is a network namespace being created.
type pendingNetNS struct {
	ch chan netnsResult
}

type netnsResult struct {
	f   *os.File
	err error
}

// newNetNSAsync starts creating an empty network namespace.
func newNetNSAsync() *pendingNetNS {
	p := &pendingNetNS{ch: make(chan netnsResult, 1)}
	go func() {
		// The thread ends up in the new namespace: it is never unlocked,
		// so the runtime discards it when this goroutine returns.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			p.ch <- netnsResult{err: fmt.Errorf("creating a network namespace: %w", err)}
			return
		}
		f, err := os.OpenFile(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			p.ch <- netnsResult{err: fmt.Errorf("opening the new network namespace: %w", err)}
			return
		}
		p.ch <- netnsResult{f: f}
	}()
	return p
}

// wait returns the namespace's handle.
func (p *pendingNetNS) wait() (*os.File, error) {
	r := <-p.ch
	p.ch <- r
	return r.f, r.err
}

// close releases the handle (the namespace lives on while a process is in it).
func (p *pendingNetNS) close() {
	if p == nil {
		return
	}
	if f, err := p.wait(); err == nil {
		f.Close()
	}
}
