package lab

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The NAT is one nftables table per address family in the nat namespace:
// "table ip natlab" and its NAT66 twin "table ip6 natlab", with the same
// chains and the same behaviour. Full-cone behaviour is built from dynamic
// maps that a filter chain after srcnat fills from the packet path, keyed by
// what the conntrack entry says the mapping is:
//
//	fc_PROTO:  public port          -> private ip . private port (inbound dnat)
//	out_PROTO: private ip . port    -> public ip . public port   (FullConeTranslate only:
//	                                   reuse the public port for every destination)
//	ad_PROTO:  public port . remote ip                           (RestrictedCone only: a set)
//
// RestrictedCone's address-dependent filtering is the set ad_PROTO: every
// outbound packet adds its public port and destination address, and the
// inbound dnat happens only for a public port and source address in it.
// Inbound traffic not dnatted is addressed to the NAT itself, where
// filter_in drops it.
//
// Every outbound packet refreshes its mapping (and its ad_PROTO element), so
// a mapping expires after being idle for the map timeout. The gate chain is
// empty except while ForgetMappings runs.
//
// The IPv6 table stores the same mappings differently, because nft 1.0.6
// (Debian bookworm) aborts on a rule that writes a map element whose key
// or data is longer than 16 bytes (assertion "dreg < ctx->reg_low" in
// netlink_gen_expr; fixed upstream later), and an IPv6 address and a port
// take 20:
//
//	fc_PROTO:     public port -> private ip
//	fcport_PROTO: public port -> private port  (both written by one rule)
//	out_PROTO:    jhash(private ip . port) -> public port
//
// out_PROTO is keyed by a 32-bit hash (with a fixed seed, so that writing
// and reading agree), handed to the snat lookup through the packet mark; the
// public address is the NAT's only one. Two private ip:ports sharing a hash
// would share a mapping: negligible for the few sockets of a test.
//
// ad_PROTO is the same in both tables: it is a set, and nft 1.0.6 does
// write 20-byte keys such as its public port . IPv6 address; only data over
// 16 bytes trips the assertion (checked with nft 1.0.6).
const natTable = "natlab"

// outHash is the hash of a private ip . port in the IPv6 out_PROTO maps.
const outHash = "mod 4294967295 seed 0x6e617436" // seed: "nat6"

// nftFamily is what differs between the IPv4 table and its IPv6 twin.
type nftFamily struct {
	name     string     // table family and address keyword: "ip" or "ip6"
	addrType string     // nftables type of an address
	public   netip.Addr // the NAT's public address
	split    bool       // store mappings the IPv6 way (see above)
}

var nftFamilies = []nftFamily{
	{name: "ip", addrType: "ipv4_addr", public: publicAddr},
	{name: "ip6", addrType: "ipv6_addr", public: publicAddr6, split: true},
}

// ruleset renders the nftables ruleset for a NAT kind: both tables.
func ruleset(kind Kind, timeout time.Duration) string {
	var s string
	for _, f := range nftFamilies {
		s += f.ruleset(kind, timeout)
	}
	return s
}

// ruleset renders the table of one address family.
func (f nftFamily) ruleset(kind Kind, timeout time.Duration) string {
	to := fmt.Sprintf("%dms", timeout.Milliseconds())
	if timeout%time.Second == 0 {
		to = fmt.Sprintf("%ds", timeout/time.Second)
	}
	public := f.public.String()
	if f.public.Is6() {
		public = "[" + public + "]" // so that a port can follow
	}
	mapDecl := func(name, typ string) string {
		return fmt.Sprintf("map %s { type %s; flags dynamic,timeout; timeout %s; }", name, typ, to)
	}
	var maps, dnat, snat, record []string
	if kind != Symmetric {
		for _, proto := range []string{"tcp", "udp"} {
			// Only from remote addresses the mapping has sent to.
			var filter string
			if kind == RestrictedCone {
				ad := "ad_" + proto
				maps = append(maps, fmt.Sprintf("set %s { type inet_service . %s; flags dynamic,timeout; timeout %s; }", ad, f.addrType, to))
				filter = fmt.Sprintf("%[1]s dport . %[2]s saddr @%[3]s ", proto, f.name, ad)
				record = append(record, fmt.Sprintf(`oifname "%[1]s" ct direction original meta l4proto %[2]s update @%[3]s { ct reply proto-dst . %[4]s daddr timeout %[5]s }`, wanIf, proto, ad, f.name, to))
			}
			fc := "fc_" + proto
			if !f.split {
				maps = append(maps, mapDecl(fc, "inet_service : "+f.addrType+" . inet_service"))
				dnat = append(dnat, fmt.Sprintf(`iifname "%[1]s" %[5]sdnat %[2]s to %[3]s dport map @%[4]s`, wanIf, f.name, proto, fc, filter))
				record = append(record, fmt.Sprintf(`oifname "%[1]s" ct direction original meta l4proto %[2]s update @%[3]s { ct reply proto-dst timeout %[4]s : ct original %[5]s saddr . ct original proto-src }`, wanIf, proto, fc, to, f.name))
				continue
			}
			fcPort := "fcport_" + proto
			maps = append(maps, mapDecl(fc, "inet_service : "+f.addrType), mapDecl(fcPort, "inet_service : inet_service"))
			dnat = append(dnat, fmt.Sprintf(`iifname "%[1]s" %[6]sdnat %[2]s to %[3]s dport map @%[4]s : %[3]s dport map @%[5]s`, wanIf, f.name, proto, fc, fcPort, filter))
			record = append(record, fmt.Sprintf(`oifname "%[1]s" ct direction original meta l4proto %[2]s update @%[3]s { ct reply proto-dst timeout %[4]s : ct original %[5]s saddr } update @%[6]s { ct reply proto-dst timeout %[4]s : ct original proto-src }`, wanIf, proto, fc, to, f.name, fcPort))
		}
	}
	if kind == FullConeTranslate {
		for _, proto := range []string{"tcp", "udp"} {
			out := "out_" + proto
			// A missing key makes the snat rule not match, so the random
			// snat below picks a fresh public port.
			if !f.split {
				maps = append(maps, mapDecl(out, f.addrType+" . inet_service : "+f.addrType+" . inet_service"))
				snat = append(snat, fmt.Sprintf(`oifname "%[1]s" meta l4proto %[2]s snat %[3]s to %[3]s saddr . %[2]s sport map @%[4]s`, wanIf, proto, f.name, out))
				record = append(record, fmt.Sprintf(`oifname "%[1]s" ct direction original meta l4proto %[2]s update @%[3]s { ct original %[4]s saddr . ct original proto-src timeout %[5]s : ct reply %[4]s daddr . ct reply proto-dst }`, wanIf, proto, out, f.name, to))
				continue
			}
			maps = append(maps, mapDecl(out, "mark : inet_service"))
			snat = append(snat, fmt.Sprintf(`oifname "%[1]s" meta l4proto %[2]s meta mark set jhash %[3]s saddr . %[2]s sport %[4]s snat %[3]s to %[5]s:meta mark map @%[6]s`, wanIf, proto, f.name, outHash, public, out))
			record = append(record, fmt.Sprintf(`oifname "%[1]s" ct direction original meta l4proto %[2]s update @%[3]s { jhash ct original %[4]s saddr . ct original proto-src %[5]s timeout %[6]s : ct reply proto-dst }`, wanIf, proto, out, f.name, outHash, to))
		}
	}
	if kind == FullConeTranslate || kind == Symmetric {
		// fully-random, not random: "random" derives the port from a hash
		// of the addresses, so a forgotten mapping would come back the same.
		snat = append(snat, fmt.Sprintf(`oifname "%[1]s" meta l4proto { tcp, udp } snat %[2]s to %[3]s:20000-29999 fully-random`, wanIf, f.name, public))
	}
	// Without a port range, snat keeps the source port unless that would
	// clash with an existing connection.
	snat = append(snat, fmt.Sprintf(`oifname "%[1]s" snat %[2]s to %[3]s`, wanIf, f.name, f.public))

	lines := func(l []string) string { return strings.Join(l, "\n\t\t") }
	return fmt.Sprintf(`table %[8]s %[1]s {
	%[2]s
	chain nat_pre {
		type nat hook prerouting priority dstnat; policy accept;
		%[3]s
	}
	chain nat_post {
		type nat hook postrouting priority srcnat; policy accept;
		%[4]s
	}
	# After srcnat, so the conntrack reply tuple holds the public ip:port.
	chain record {
		type filter hook postrouting priority srcnat + 1; policy accept;
		%[5]s
	}
	chain gate {
	}
	chain filter_fwd {
		type filter hook forward priority filter; policy drop;
		jump gate
		ct state established,related accept
		iifname "%[6]s" oifname "%[7]s" accept
		# Inbound only through a mapping (dnat in nat_pre).
		iifname "%[7]s" oifname "%[6]s" ct status dnat accept
	}
	# Unmapped inbound traffic ends up addressed to the NAT itself: drop it
	# silently like an ISP NAT, instead of answering with RST/ICMP.
	chain filter_in {
		type filter hook input priority filter; policy accept;
		iifname "%[7]s" meta l4proto { tcp, udp } drop
	}
}
`, natTable, strings.Join(maps, "\n\t"), lines(dnat), lines(snat), lines(record), lanIf, wanIf, f.name)
}

// mapNames lists the nftables maps and sets holding the mappings of a NAT
// kind in the family's table, each as "map NAME" or "set NAME".
func (f nftFamily) mapNames(kind Kind) []string {
	var names []string
	for _, proto := range []string{"tcp", "udp"} {
		if kind != Symmetric {
			names = append(names, "map fc_"+proto)
			if f.split {
				names = append(names, "map fcport_"+proto)
			}
		}
		if kind == FullConeTranslate {
			names = append(names, "map out_"+proto)
		}
		if kind == RestrictedCone {
			names = append(names, "set ad_"+proto)
		}
	}
	return names
}

func (l *Lab) setupNAT() error {
	if err := run(l.NAT, ruleset(l.Kind, l.cfg.mappingTimeout), "nft", "-f", "-"); err != nil {
		return err
	}
	if !l.cfg.strictTCP {
		return nil
	}
	if err := run(l.NAT, "", "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0"); err != nil {
		return err
	}
	var rules string
	for _, f := range nftFamilies {
		rules += fmt.Sprintf("insert rule %s %s filter_fwd ct state invalid drop\n", f.name, natTable)
	}
	return run(l.NAT, rules, "nft", "-f", "-")
}

// ForgetMappings makes the NAT forget every mapping, IPv4 and IPv6, like a
// NAT reboot: it flushes the mapping maps and the conntrack table. Existing connections
// through the NAT break; new ones get fresh mappings (with FullConeTranslate
// a different public port, barring a 1-in-10000 coincidence).
func (l *Lab) ForgetMappings() error {
	var flushMaps, closeGate, openGate string
	for _, f := range nftFamilies {
		for _, m := range f.mapNames(l.Kind) {
			typ, name, _ := strings.Cut(m, " ") // "map" or "set"
			flushMaps += fmt.Sprintf("flush %s %s %s %s\n", typ, f.name, natTable, name)
		}
		// Forwarding is blocked meanwhile so that no packet in flight
		// re-creates a mapping from a conntrack entry about to be flushed.
		closeGate += fmt.Sprintf("add rule %s %s gate drop\n", f.name, natTable)
		openGate += fmt.Sprintf("flush chain %s %s gate\n", f.name, natTable)
	}
	closeGate += flushMaps
	openGate += flushMaps
	if err := run(l.NAT, closeGate, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("forget mappings: %w", err)
	}
	if err := l.Do(l.NAT, flushConntrack); err != nil {
		return fmt.Errorf("forget mappings: %w", err)
	}
	if err := run(l.NAT, openGate, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("forget mappings: %w", err)
	}
	return nil
}

// flushConntrack empties the conntrack table of the calling thread's
// namespace, like "conntrack -F", without needing the conntrack tool.
func flushConntrack() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("conntrack flush: netlink socket: %w", err)
	}
	defer unix.Close(fd)

	const (
		ipctnlMsgCtDelete = 2 // IPCTNL_MSG_CT_DELETE; without a tuple it flushes
		nfgenmsgLen       = 4 // struct nfgenmsg: family, version, res_id
	)
	msg := make([]byte, unix.NLMSG_HDRLEN+nfgenmsgLen)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NFNL_SUBSYS_CTNETLINK<<8|ipctnlMsgCtDelete)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	ne.PutUint32(msg[8:], 1) // sequence number
	msg[16] = unix.AF_UNSPEC // all address families
	msg[17] = unix.NFNETLINK_V0
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("conntrack flush: send: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("conntrack flush: receive: %w", err)
	}
	// The kernel acks with NLMSG_ERROR carrying 0 or a negative errno.
	if n < unix.NLMSG_HDRLEN+4 || ne.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("conntrack flush: unexpected reply %x", buf[:n])
	}
	if errno := -int32(ne.Uint32(buf[16:])); errno != 0 {
		return fmt.Errorf("conntrack flush: %w", unix.Errno(errno))
	}
	return nil
}
