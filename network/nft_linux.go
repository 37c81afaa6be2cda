package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nook's nftables rules live in one table of their own in the outer
// namespace, "ip nook", so they never mix with the host's firewall:
//
//	chain postrouting (nat, srcnat):
//	    ip saddr SUBNET ip daddr != SUBNET masquerade        # outbound, per network unless --internal
//	    oifname BRIDGE ip saddr 127.0.0.0/8 masquerade        # root: published ports reached via 127.0.0.1
//	    oifname BRIDGE ip saddr SUBNET ct status dnat masquerade  # root: a container reaching a published port
//	chain prerouting (nat, dstnat), chain output (nat, dstnat):    # root only
//	    [ip daddr HOSTIP | fib daddr type local] meta l4proto P th dport HOSTPORT dnat to CIP:CPORT
//	chain forward (filter):
//	    iifname BRIDGE oifname != BRIDGE drop                  # --internal networks
//	    oifname BRIDGE iifname != BRIDGE drop
//
// Every rule carries a comment naming its owner ("net:ID12" or
// "ctr:CONTAINERID"), which is how it is found again and deleted; `nft list
// table ip nook` shows them.
const nftTable = "nook"

var (
	tbl       = &nftables.Table{Name: nftTable, Family: nftables.TableFamilyIPv4}
	chainPost = &nftables.Chain{Name: "postrouting", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource}
	chainPre = &nftables.Chain{Name: "prerouting", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest}
	chainOut = &nftables.Chain{Name: "output", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest}
	chainFwd = &nftables.Chain{Name: "forward", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter}
)

func netTag(n *Network) string  { return "net:" + n.ID[:12] }
func ctrTag(cid string) string  { return "ctr:" + cid }
func comment(tag string) []byte { return userdata.AppendString(nil, userdata.TypeComment, tag) }
func ruleTag(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

// nftConn opens an nftables connection whose socket lives in ns (made on
// a thread inside ns, see inNS; nftables' WithNetNSFd would switch back).
// Close it with CloseLasting.
func nftConn(ns netns.NsHandle) (*nftables.Conn, error) {
	var c *nftables.Conn
	err := inNS(ns, func() (err error) {
		c, err = nftables.New(nftables.AsLasting())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening nftables: %w", err)
	}
	return c, nil
}

// ensureTable creates nook's table and chains (idempotent: nftables
// accepts re-adding identical base chains).
func ensureTable(c *nftables.Conn) {
	c.AddTable(tbl)
	for _, ch := range []*nftables.Chain{chainPost, chainPre, chainOut, chainFwd} {
		c.AddChain(ch)
	}
}

// networkRules are the rules a network needs in the outer namespace.
func networkRules(n *Network, rootless bool) ([]*nftables.Rule, error) {
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return nil, fmt.Errorf("network %s: bad subnet %q: %w", n.Name, n.Subnet, err)
	}
	ud := comment(netTag(n))
	var rules []*nftables.Rule
	add := func(ch *nftables.Chain, ex ...expr.Any) {
		rules = append(rules, &nftables.Rule{Table: tbl, Chain: ch, Exprs: ex, UserData: ud})
	}
	if !n.Internal {
		add(chainPost, concat(
			matchPrefix(12, subnet, expr.CmpOpEq),
			matchPrefix(16, subnet, expr.CmpOpNeq),
			[]expr.Any{&expr.Masq{}})...)
	}
	if !rootless {
		add(chainPost, concat(
			matchIfname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpEq),
			matchPrefix(12, netip.MustParsePrefix("127.0.0.0/8"), expr.CmpOpEq),
			[]expr.Any{&expr.Masq{}})...)
		add(chainPost, concat(
			matchIfname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpEq),
			matchPrefix(12, subnet, expr.CmpOpEq),
			[]expr.Any{
				&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
					Mask: binary.NativeEndian.AppendUint32(nil, 0x20 /* IPS_DST_NAT */), Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
				&expr.Masq{},
			})...)
	}
	if n.Internal {
		add(chainFwd, concat(
			matchIfname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpEq),
			matchIfname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpNeq),
			[]expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})...)
		add(chainFwd, concat(
			matchIfname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpEq),
			matchIfname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpNeq),
			[]expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})...)
	}
	return rules, nil
}

// dnatRules publish ports as root: connections to a host port (on HostIP,
// or on any local address) are rewritten to the container's address, both
// arriving from outside (prerouting) and made on the host (output).
func dnatRules(cid string, cip netip.Addr, ports []PortMapping) ([]*nftables.Rule, error) {
	ud := comment(ctrTag(cid))
	var rules []*nftables.Rule
	for _, p := range ports {
		var proto byte
		switch p.Protocol {
		case "tcp":
			proto = unix.IPPROTO_TCP
		case "udp":
			proto = unix.IPPROTO_UDP
		case "sctp":
			proto = unix.IPPROTO_SCTP
		default:
			return nil, fmt.Errorf("unsupported protocol %q", p.Protocol)
		}
		var dst []expr.Any
		if p.HostIP != "" && p.HostIP != "0.0.0.0" {
			a, err := netip.ParseAddr(p.HostIP)
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("host address %q: only IPv4 addresses can be published", p.HostIP)
			}
			dst = matchPrefix(16, netip.PrefixFrom(a, 32), expr.CmpOpEq)
		} else {
			dst = []expr.Any{
				&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
			}
		}
		ip4 := cip.As4()
		ex := concat(dst, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p.HostPort)},
			&expr.Immediate{Register: 1, Data: ip4[:]},
			&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, p.ContainerPort)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		})
		for _, ch := range []*nftables.Chain{chainPre, chainOut} {
			rules = append(rules, &nftables.Rule{Table: tbl, Chain: ch, Exprs: ex, UserData: ud})
		}
	}
	return rules, nil
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// matchPrefix compares the IPv4 address at offset (12 = source, 16 =
// destination) of the network header with p.
func matchPrefix(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
	if p.Bits() == 0 {
		mask = make([]byte, 4)
	}
	a := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: a[:]},
	}
}

func matchIfname(key uint32, name string, op expr.CmpOp) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKey(key), Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

// replaceRules deletes every rule tagged tag and adds rules, in one
// transaction.
func replaceRules(c *nftables.Conn, tag string, rules []*nftables.Rule) error {
	ensureTable(c)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("creating nftables table %s: %w", nftTable, err)
	}
	if err := deleteTagged(c, func(t string) bool { return t == tag }); err != nil {
		return err
	}
	for _, r := range rules {
		c.AddRule(r)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("adding nftables rules (%s): %w", tag, err)
	}
	return nil
}

// deleteTagged queues the deletion of every rule whose tag matches (the
// caller flushes). A missing table means there is nothing to delete.
func deleteTagged(c *nftables.Conn, match func(string) bool) error {
	for _, ch := range []*nftables.Chain{chainPost, chainPre, chainOut, chainFwd} {
		rules, err := c.GetRules(tbl, ch)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return fmt.Errorf("listing nftables chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			if match(ruleTag(r)) {
				if err := c.DelRule(r); err != nil {
					return fmt.Errorf("deleting nftables rule: %w", err)
				}
			}
		}
	}
	return nil
}

// removeTagged deletes the rules whose tag matches, now.
func removeTagged(c *nftables.Conn, match func(string) bool) error {
	if err := deleteTagged(c, match); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("deleting nftables rules: %w", err)
	}
	return nil
}

// containerTags lists the container IDs that own DNAT rules.
func containerTags(c *nftables.Conn) (map[string]bool, error) {
	out := map[string]bool{}
	for _, ch := range []*nftables.Chain{chainPre, chainOut} {
		rules, err := c.GetRules(tbl, ch)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("listing nftables chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			if t := ruleTag(r); strings.HasPrefix(t, "ctr:") {
				out[strings.TrimPrefix(t, "ctr:")] = true
			}
		}
	}
	return out, nil
}

func isNotExist(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "no such file or directory") || strings.Contains(err.Error(), unix.ENOENT.Error()))
}
