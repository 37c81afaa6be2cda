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
// userns.DataDir()/networks), one per network, each change made under an
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
// The container's network namespace is created by the runner: its init is
// started with CLONE_NEWNET (inside the holder's user namespace when
// rootless) and waits; the runner calls
//
//	m, _ := network.New(network.Options{})            // per-user defaults
//	res, err := m.Attach(ctx, network.AttachOptions{
//		ContainerID: id, Name: name,
//		NetNSPath:   fmt.Sprintf("/proc/%d/ns/net", initPID),
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
// container's state, and lets init go on. With --network host the runner
// does not unshare the network namespace and Attach only renders the files;
// with --network none it brings up loopback; --network container:ID is the
// runner's alone (join that namespace, copy that container's files).
//
// When the container stops (and on every error path after Attach), the
// runner calls m.Detach(ctx, id): veth pairs, published ports and leases go;
// Detach is idempotent. When the container's init has died without a
// Detach (kill -9 of nook, a holder restart), its lease is stale: the
// namespace it names is gone, and the next change to the network frees it.
// After a holder restart, or on `nook system` maintenance, the runner may
// call m.Reconcile(ctx, isLive) to free every lease of a container that is
// not running, and the published ports no lease accounts for.
//
// A runner that prefers a namespace before the process exists (to attach
// while the image is still being mounted) can use NewNetNS(id), which pins
// a fresh namespace at NetNSDir()/id, pass that path to Attach and setns
// into it in init; DeleteNetNS removes it after Detach.
//
// `nook port` and `ps` read the published ports from m.Ports(id) (or the
// recorded res.Ports) and format them with PortLines and FormatPorts.
package network
