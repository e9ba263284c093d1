package lab

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The NAT is one nftables table in the nat namespace. Full-cone behaviour
// is built from dynamic maps that a filter chain after srcnat fills from the
// packet path, keyed by what the conntrack entry says the mapping is:
//
//	fc_PROTO:  public port          -> private ip . private port (inbound dnat)
//	out_PROTO: private ip . port    -> public ip . public port   (FullConeTranslate only:
//	                                   reuse the public port for every destination)
//
// Every outbound packet refreshes its mapping, so a mapping expires after
// being idle for the map timeout. The gate chain is empty except while
// ForgetMappings runs.
const natTable = "natlab"

// ruleset renders the nftables ruleset for a NAT kind.
func ruleset(kind Kind, timeout time.Duration) string {
	to := fmt.Sprintf("%dms", timeout.Milliseconds())
	if timeout%time.Second == 0 {
		to = fmt.Sprintf("%ds", timeout/time.Second)
	}
	var maps, dnat, snat, record []string
	if kind != Symmetric {
		for _, proto := range []string{"tcp", "udp"} {
			maps = append(maps, fmt.Sprintf("map fc_%s { type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout %s; }", proto, to))
			dnat = append(dnat, fmt.Sprintf(`iifname "%s" dnat ip to %s dport map @fc_%[2]s`, wanIf, proto))
			record = append(record, fmt.Sprintf(`oifname "%s" ct direction original meta l4proto %s update @fc_%[2]s { ct reply proto-dst timeout %s : ct original ip saddr . ct original proto-src }`, wanIf, proto, to))
		}
	}
	if kind == FullConeTranslate {
		for _, proto := range []string{"tcp", "udp"} {
			maps = append(maps, fmt.Sprintf("map out_%s { type ipv4_addr . inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout %s; }", proto, to))
			// A missing key makes this rule not match, so the random
			// snat below picks a fresh public port.
			snat = append(snat, fmt.Sprintf(`oifname "%s" meta l4proto %s snat ip to ip saddr . %[2]s sport map @out_%[2]s`, wanIf, proto))
			record = append(record, fmt.Sprintf(`oifname "%s" ct direction original meta l4proto %s update @out_%[2]s { ct original ip saddr . ct original proto-src timeout %s : ct reply ip daddr . ct reply proto-dst }`, wanIf, proto, to))
		}
	}
	if kind != FullConePreserve {
		// fully-random, not random: "random" derives the port from a hash
		// of the addresses, so a forgotten mapping would come back the same.
		snat = append(snat, fmt.Sprintf(`oifname "%s" meta l4proto { tcp, udp } snat ip to %s:20000-29999 fully-random`, wanIf, publicAddr))
	}
	// Without a port range, snat keeps the source port unless that would
	// clash with an existing connection.
	snat = append(snat, fmt.Sprintf(`oifname "%s" snat ip to %s`, wanIf, publicAddr))

	lines := func(l []string) string { return strings.Join(l, "\n\t\t") }
	return fmt.Sprintf(`table ip %[1]s {
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
		# Inbound only through a full-cone mapping (dnat in nat_pre).
		iifname "%[7]s" oifname "%[6]s" ct status dnat accept
	}
	# Unmapped inbound traffic ends up addressed to the NAT itself: drop it
	# silently like an ISP NAT, instead of answering with RST/ICMP.
	chain filter_in {
		type filter hook input priority filter; policy accept;
		iifname "%[7]s" meta l4proto { tcp, udp } drop
	}
}
`, natTable, strings.Join(maps, "\n\t"), lines(dnat), lines(snat), lines(record), lanIf, wanIf)
}

// mapNames lists the nftables maps holding the mappings of a NAT kind.
func mapNames(kind Kind) []string {
	switch kind {
	case FullConePreserve:
		return []string{"fc_tcp", "fc_udp"}
	case FullConeTranslate:
		return []string{"fc_tcp", "fc_udp", "out_tcp", "out_udp"}
	}
	return nil
}

func (l *Lab) setupNAT() error {
	return run(l.NAT, ruleset(l.Kind, l.cfg.mappingTimeout), "nft", "-f", "-")
}

// ForgetMappings makes the NAT forget every mapping, like a NAT reboot:
// it flushes the mapping maps and the conntrack table. Existing connections
// through the NAT break; new ones get fresh mappings (with FullConeTranslate
// a different public port, barring a 1-in-10000 coincidence).
func (l *Lab) ForgetMappings() error {
	flushMaps := ""
	for _, m := range mapNames(l.Kind) {
		flushMaps += fmt.Sprintf("flush map ip %s %s\n", natTable, m)
	}
	// Forwarding is blocked meanwhile so that no packet in flight
	// re-creates a mapping from a conntrack entry about to be flushed.
	closeGate := fmt.Sprintf("add rule ip %s gate drop\n", natTable) + flushMaps
	openGate := fmt.Sprintf("flush chain ip %s gate\n", natTable) + flushMaps
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
