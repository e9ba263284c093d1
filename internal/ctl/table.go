package ctl

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/natmap-go/natmap/internal/mapping"
)

// maxErrorWidth keeps a table line readable on a terminal; the whole
// message is in the JSON output and the log.
const maxErrorWidth = 60

// WriteTable writes ms as a table for people, one line per mapping:
// section, state, protocol (and forward mode), private and public
// addresses, how long the state has lasted (relative to now), relay
// counters, and the last error, shortened. Scripts should read the JSON
// instead: columns may change.
func WriteTable(w io.Writer, ms []MappingStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tSTATE\tPROTO\tPRIVATE\tPUBLIC\tFOR\tRELAY\tERROR")
	for _, m := range ms {
		cells := []string{
			m.Section,
			state(m),
			proto(m),
			addr(m.PrivateIP, m.PrivatePort),
			addr(m.PublicIP, m.PublicPort),
			age(m.Since, now),
			relay(m.Relay),
			lastError(m),
		}
		for i, c := range cells {
			cells[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing status table: %w", err)
	}
	// Below the table: a verdict is a sentence, too long for a column.
	for _, m := range ms {
		if m.Reach != nil && m.State == mapping.Mapped {
			if _, err := fmt.Fprintf(w, "%s: %s\n", cell(m.Section), cell(m.Reach.Summary)); err != nil {
				return fmt.Errorf("writing status table: %w", err)
			}
		}
	}
	return writeUpdaters(w, ms, now)
}

// writeUpdaters lists the built-in updaters after the table, one line
// each: section, updater, type, state, when it last ran, and its error.
func writeUpdaters(w io.Writer, ms []MappingStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := false
	for _, m := range ms {
		for _, u := range m.Updaters {
			if !header {
				fmt.Fprintln(tw, "\nSECTION\tUPDATER\tTYPE\tSTATE\tRAN\tERROR")
				header = true
			}
			state := u.State
			if u.Attempts > 1 {
				state = fmt.Sprintf("%s (%d)", state, u.Attempts)
			}
			errMsg := []rune(u.LastError)
			if len(errMsg) > maxErrorWidth {
				errMsg = append(errMsg[:maxErrorWidth-3], []rune("...")...)
			}
			cells := []string{m.Section, u.Name, u.Type, state, age(u.LastRun, now), string(errMsg)}
			for i, c := range cells {
				cells[i] = cell(c)
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing status table: %w", err)
	}
	return nil
}

func state(m MappingStatus) string {
	if m.State == mapping.Retrying && m.Retries > 0 {
		return fmt.Sprintf("%s (%d)", m.State, m.Retries)
	}
	return string(m.State)
}

// proto is the protocol, and in forward mode who forwards: tcp/forward
// (the relay), tcp/kernel.
func proto(m MappingStatus) string {
	p := m.Protocol
	switch {
	case m.Mode == "forward" && m.ForwardMode == "kernel":
		p += "/kernel"
	case m.Mode == "forward":
		p += "/forward"
	}
	if m.Front != "" {
		// The router in front forwards the port: with what, until when.
		p += " via " + m.Front
		if m.FrontLeaseEnd != 0 {
			p += " to " + time.Unix(m.FrontLeaseEnd, 0).Format("15:04")
		}
	}
	return p
}

func addr(ip string, port int) string {
	switch {
	case port == 0 && ip == "":
		return ""
	case ip == "":
		ip = "*"
	}
	return net.JoinHostPort(ip, strconv.Itoa(port))
}

// age is how long ago since was, coarse as people read it: 45s, 12m05s,
// 3h12m, 2d04h.
func age(since int64, now time.Time) string {
	if since == 0 {
		return ""
	}
	d := max(now.Sub(time.Unix(since, 0)), 0)
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
	}
}

func relay(r *RelayStats) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%d/%d up %s down %s", r.Active, r.Total, bytesize(r.BytesUp), bytesize(r.BytesDown))
}

// bytesize is n in binary units, 3 significant figures at most: 512B,
// 1.5K, 40M.
func bytesize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	const units = "KMGTPE"
	f, i := float64(n)/1024, 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f < 10 {
		return fmt.Sprintf("%.1f%c", f, units[i])
	}
	return fmt.Sprintf("%.0f%c", f, units[i])
}

// lastError is the error worth showing: a mapped or disabled mapping's last
// error is history; then the notify script's, if it failed.
func lastError(m MappingStatus) string {
	msg := m.LastError
	if m.State == mapping.Mapped || m.State == mapping.Disabled {
		msg = ""
	}
	if msg == "" && m.ScriptError != "" {
		msg = "notify script: " + m.ScriptError
	}
	r := []rune(msg)
	if len(r) > maxErrorWidth {
		return string(r[:maxErrorWidth-3]) + "..."
	}
	return msg
}

// cell makes s safe for one tabwriter cell: control characters (a tab or
// newline in a comment or an error) would break the columns, and an empty
// cell reads as a dash.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// WriteDetail writes one mapping's counters and history, oldest event
// first, for `natmap status SECTION`; times are in loc.
func WriteDetail(w io.Writer, m MappingStatus, loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if c := m.Metrics; c != nil {
		fmt.Fprintf(tw, "\nsessions %d, failed %d, addresses %d\n", c.Sessions, c.Failures, c.AddressChanges)
	}
	if len(m.History) > 0 {
		fmt.Fprintln(tw, "\nTIME\tSTATE\tPUBLIC\tERROR")
		for _, ev := range m.History {
			cells := []string{time.Unix(ev.Time, 0).In(loc).Format(time.DateTime), string(ev.State), addr(ev.PublicIP, ev.PublicPort), ev.Error}
			for i, c := range cells {
				cells[i] = cell(c)
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing status detail: %w", err)
	}
	return nil
}
