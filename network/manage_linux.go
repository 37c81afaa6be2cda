package network

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// InUseError names the containers that keep a network from being removed.
type InUseError struct {
	Network    string
	Containers []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("network %s has active endpoints (containers: %s): stop them or disconnect them first",
		e.Network, strings.Join(e.Containers, ", "))
}
func (e *InUseError) Unwrap() error { return ErrInUse }

// Remove deletes networks by name or ID: their files, bridges and rules.
// A network with live containers is refused; the predefined ones too. It
// goes on with the others after a failure and returns every error.
func (m *Manager) Remove(ctx context.Context, refs ...string) (removed []string, err error) {
	outerNS := m.outerOrNone()
	defer outerNS.Close()
	err = m.locked(func() error {
		nets, err := m.loadAll()
		if err != nil {
			return err
		}
		var errs []error
		for _, ref := range refs {
			if ref == ModeHost || ref == ModeNone || ref == DockerDefault || ref == DefaultNetwork {
				errs = append(errs, fmt.Errorf("%s is a pre-defined network and cannot be removed", ref))
				continue
			}
			n, err := find(nets, ref)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if n.Default() {
				errs = append(errs, fmt.Errorf("%s is a pre-defined network and cannot be removed", n.Name))
				continue
			}
			if err := m.freeStale(ctx, outerNS, n); err != nil {
				errs = append(errs, err)
				continue
			}
			if len(n.Leases) > 0 {
				errs = append(errs, &InUseError{Network: n.Name, Containers: leaseNames(n)})
				continue
			}
			if err := m.teardown(outerNS, n); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := m.drop(n); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, ref)
		}
		return errors.Join(errs...)
	})
	return removed, err
}

// Prune removes the user-defined networks that have no live containers
// and that keep reports true for (nil: all of them).
func (m *Manager) Prune(ctx context.Context, match func(*Network) bool) (removed []string, err error) {
	outerNS := m.outerOrNone()
	defer outerNS.Close()
	err = m.locked(func() error {
		nets, err := m.loadAll()
		if err != nil {
			return err
		}
		var errs []error
		for _, n := range nets {
			if n.Default() || (match != nil && !match(n)) {
				continue
			}
			if err := m.freeStale(ctx, outerNS, n); err != nil {
				errs = append(errs, err)
				continue
			}
			if len(n.Leases) > 0 {
				continue
			}
			if err := m.teardown(outerNS, n); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := m.drop(n); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, n.Name)
		}
		return errors.Join(errs...)
	})
	return removed, err
}

// teardown removes a network's bridge and rules from the outer namespace.
func (m *Manager) teardown(outerNS netns.NsHandle, n *Network) error {
	if !outerNS.IsOpen() {
		return nil
	}
	h, err := nlHandle(outerNS)
	if err != nil {
		return err
	}
	defer h.Close()
	if l, err := h.LinkByName(n.Bridge); err == nil {
		if _, ok := l.(*netlink.Bridge); ok {
			if err := h.LinkDel(l); err != nil {
				return fmt.Errorf("removing bridge %s of network %s: %w", n.Bridge, n.Name, err)
			}
		}
	}
	c, err := nftConn(outerNS)
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	tag := netTag(n)
	if err := removeTagged(c, func(t string) bool { return t == tag }); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	return nil
}

func leaseNames(n *Network) []string {
	var out []string
	for _, l := range n.Leases {
		out = append(out, displayLease(l))
	}
	sort.Strings(out)
	return out
}

// Connect attaches a running container to one more network (`network
// connect`). The container must already be attached (its first network
// decides the default route and the published ports).
func (m *Manager) Connect(ctx context.Context, o AttachOptions) (*Result, error) {
	if len(o.Networks) != 1 {
		return nil, errors.New("connect: name exactly one network")
	}
	if mode, _ := Mode(o.Networks); mode != "bridge" {
		return nil, fmt.Errorf("a container cannot be connected to network %q while running: it is fixed when the container starts", o.Networks[0])
	}
	return m.Attach(ctx, o)
}

// Disconnect detaches a container from one network (`network disconnect`).
func (m *Manager) Disconnect(ctx context.Context, containerID, network string) error {
	nets, err := m.List()
	if err != nil {
		return err
	}
	n, err := find(nets, network)
	if err != nil {
		return err
	}
	if n.Leases[containerID] == nil {
		return fmt.Errorf("container %.12s is not connected to network %s", containerID, n.Name)
	}
	return m.detach(ctx, containerID, []string{n.ID}, false)
}

// outerOrNone opens the outer namespace, or returns a closed handle when
// it is gone (a holder that exited): its links, rules and ports went with
// it, and only the leases are left to free.
func (m *Manager) outerOrNone() netns.NsHandle {
	h, err := openNS(m.outer)
	if err != nil {
		return netns.None()
	}
	return h
}
