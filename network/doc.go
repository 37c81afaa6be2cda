// Package network gives containers their network: named bridge networks
// with address management, a veth pair per container and network, NAT for
// outbound traffic, published ports, and the /etc/hosts, /etc/resolv.conf
// and /etc/hostname files. It is a library: no command line, no output of
// its own (warnings go to Options.Warnings).
//
// # Where things live
//
// Bridges live in an "outer" network namespace. Rootless, that is the
// holder's detached namespace (userns.NetNSPath()), whose tap0 is
// slirp4netns's (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3): outbound
// traffic from a bridge is masqueraded to tap0 by nftables rules inside
// that namespace (where the joined nook, uid 0 of the holder's user
// namespace, has CAP_NET_ADMIN). A joined nook itself stays in the host's
// namespace, so it reaches the outer one through the namespace file. As
// real root there is no holder: the outer namespace is the host's own, the
// bridge is created there, IPv4 forwarding is switched on and outbound
// traffic is masqueraded through the host's route (the same rules, in an
// nftables table "ip nook" of nook's own; see nft_linux.go). A host
// firewall whose forward chain drops traffic still has the last word.
//
// Network definitions and leases are JSON files in Options.Dir (default
// network.DefaultDir: per holder when rootless), one per network, each change made under an
// flock and written atomically. They belong with the outer namespace, not
// with a store: all containers on one bridge must share the leases.
//
// Addresses: the default network "nook" (docker's "bridge" is an alias) is
// 10.88.0.0/16 on bridge nook0; user networks get /24s from 10.89.0.0 up,
// skipping subnets used by another network or routed in the outer
// namespace. The MTU is slirp4netns's 65520 rootless (fewer packets through
// the port forwarder) and 1500 as root.
//
// Publishing: rootless, through the holder's port manager (rootlesskit's
// builtin driver: the holder's parent process listens on the host port and
// connects to the container's address); as root, with nftables DNAT (no
// process in the data path). See publish_linux.go.
//
// # The runner's side
//
// The runner gives each container a network namespace: either its init is
// cloned with CLONE_NEWNET, or (faster: made while the image is mounted)
// CreateNetNS returns a handle that init joins. Before the container's
// command starts, the runner calls
//
//	m, _ := network.New(network.Options{})            // per-user defaults
//	res, err := m.Attach(ctx, network.AttachOptions{
//		ContainerID: id, Name: name,
//		NetNSPath:   nsPath,                            // /proc/PID/ns/net, or /proc/self/fd/N of the handle
//		Networks:    []string{"nook"},                  // --network; "none", "host" stand alone
//		Aliases:     aliases, Hostname: hostname,
//		Ports:       ports,                             // network.ParsePublish(-p), network.PublishAll(-P)
//		DNS: dns, DNSSearch: search, DNSOptions: opts, AddHosts: addHosts,
//		HostsPath:   dir + "/hosts",                    // optional: files written in place,
//		ResolvConfPath: dir + "/resolv.conf",           // hosts kept current as peers come and go
//		HostnamePath:   dir + "/hostname",
//	})
//
// then bind-mounts the three files (or writes res.Hosts, res.ResolvConf,
// res.Hostname itself), records res.Endpoints and res.Ports in the
// container's state, and lets init go on. Parse -p with ParsePublish while
// validating flags, so a malformed spec fails before anything exists. With
// --network host the runner does not unshare the network namespace and
// Attach only renders the files; with --network none it brings up
// loopback; --network container:ID is the runner's alone (join that
// namespace, copy that container's files).
//
// When the container stops (and on every error path after Attach), the
// runner calls m.Detach(ctx, id): veth pairs, published ports and leases go;
// Detach is idempotent. Close any handle on the namespace first: a dead
// namespace takes its veth pair with it in the background, while deleting
// a live one waits ~20 ms for the kernel. When the container's init has
// died without a Detach (kill -9 of nook, a holder restart), its lease is
// stale: the namespace it names is gone, and the next change to the
// network frees it. After a holder restart, or on maintenance, the runner
// may call m.Reconcile(ctx, isLive) to free every lease of a container that
// is not running, and the published ports no lease accounts for.
//
// Threads: a rootless nook may enter the holder's and containers'
// namespaces but never return to the host's, and a discarded OS thread
// fires the Pdeathsig of the children it forked. So every namespace switch
// in this package happens on one thread kept for the life of the process;
// callers never find a thread of theirs moved. Do the same (or use
// CreateNetNS) rather than unsharing on a throwaway thread.
//
// A namespace that must outlive every process (pinned by a bind mount at
// NetNSDir()/id) comes from NewNetNS; DeleteNetNS removes it after Detach.
//
// `nook port` and `ps` read the published ports from m.Ports(id) (or the
// recorded res.Ports) and format them with PortLines and FormatPorts.
package network
