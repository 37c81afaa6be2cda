package runner

import (
	"os"

	"github.com/nook-containers/nook/network"
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

// newNetNSAsync starts creating an empty network namespace. It is made on
// the network package's long-lived namespace thread: unsharing on a
// thread of our own and then discarding it would kill, through
// Pdeathsig, any child that thread had forked before.
func newNetNSAsync() *pendingNetNS {
	p := &pendingNetNS{ch: make(chan netnsResult, 1)}
	go func() {
		f, err := network.CreateNetNS()
		p.ch <- netnsResult{f: f, err: err}
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
