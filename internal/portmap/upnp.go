package portmap

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// UPnP IGD error codes natmap acts on.
const (
	upnpOnlyPermanent     = 725 // OnlyPermanentLeasesSupported
	upnpNoSuchEntry       = 714 // NoSuchEntryInArray
	upnpMaxLease          = 604800
	upnpMappingDesc       = "natmap"
	upnpServiceIPv2Suffix = "WANIPConnection:2"
)

// UPnPClient speaks to one Internet gateway's WAN connection service.
type UPnPClient struct {
	gw      netip.Addr
	client  netip.Addr // our address on the gateway's link
	service igdService
	control httpURL
	opts    Options
}

// DiscoverUPnP finds the Internet gateway device on gw (SSDP, then its
// description) and returns a client for its WAN connection service. Every
// URL must point at gw.
func DiscoverUPnP(ctx context.Context, gw, client netip.Addr, o Options) (*UPnPClient, error) {
	r, err := ssdpSearch(ctx, gw, client, o)
	if err != nil {
		return nil, err
	}
	resp, err := doHTTP(ctx, o, "GET", r.Location, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("upnp: device description: %w", err)
	}
	if resp.Status != 200 {
		return nil, fmt.Errorf("upnp: device description %s: HTTP status %d", r.Location, resp.Status)
	}
	svc, urlBase, err := parseDescription(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("upnp: %s: %w", r.Location, err)
	}
	base := r.Location
	if urlBase != "" {
		if base, err = parseHTTPURL(urlBase); err != nil {
			return nil, fmt.Errorf("upnp: URLBase: %w", err)
		}
	}
	control, err := base.resolve(svc.Control)
	if err != nil {
		return nil, fmt.Errorf("upnp: control URL: %w", err)
	}
	if control.Host.Addr() != gw {
		return nil, fmt.Errorf("upnp: control URL %s is not on the gateway %s", control, gw)
	}
	return &UPnPClient{gw: gw, client: client, service: svc, control: control, opts: o}, nil
}

func (c *UPnPClient) Method() string { return UPnP }

// Service is the WAN connection service in use.
func (c *UPnPClient) Service() string { return c.service.Type }

func (c *UPnPClient) call(ctx context.Context, action string, args []soapArg) (map[string]string, error) {
	header := [][2]string{
		{"Content-Type", `text/xml; charset="utf-8"`},
		{"SOAPAction", `"` + c.service.Type + "#" + action + `"`},
	}
	resp, err := doHTTP(ctx, c.opts, "POST", c.control, header, soapRequest(c.service.Type, action, args))
	if err != nil {
		return nil, fmt.Errorf("upnp %s: %w", action, err)
	}
	out, err := parseSOAP(resp.Body, action)
	if err != nil {
		if f := (*soapFault)(nil); errors.As(err, &f) {
			return nil, &RefusedError{Method: UPnP, Code: f.Code, Text: action + ": " + f.Description}
		}
		return nil, fmt.Errorf("upnp %s (HTTP %d): %w", action, resp.Status, err)
	}
	if resp.Status != 200 {
		return nil, fmt.Errorf("upnp %s: HTTP status %d", action, resp.Status)
	}
	return out, nil
}

// ExternalAddress asks for the router's external address.
func (c *UPnPClient) ExternalAddress(ctx context.Context) (netip.Addr, error) {
	out, err := c.call(ctx, "GetExternalIPAddress", nil)
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(out["NewExternalIPAddress"])
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("upnp: external address %q", truncate(out["NewExternalIPAddress"]))
	}
	return a, nil
}

func upnpProto(proto string) (string, error) {
	return pick(proto, "TCP", "UDP")
}

// Map creates or renews a mapping. The router must grant ExternalPort
// when one is asked for (UPnP cannot move it, except v2's
// AddAnyPortMapping when ExternalPort is 0).
func (c *UPnPClient) Map(ctx context.Context, r Request) (Mapping, error) {
	proto, err := upnpProto(r.Protocol)
	if err != nil {
		return Mapping{}, err
	}
	if r.InternalPort == 0 {
		return Mapping{}, errors.New("upnp: internal port 0")
	}
	lease := min(lifetimeSeconds(r.Lifetime), upnpMaxLease)
	if lease == 0 {
		lease = 1
	}
	args := func(ext uint16, lease uint32) []soapArg {
		return []soapArg{
			{"NewRemoteHost", ""},
			{"NewExternalPort", strconv.Itoa(int(ext))},
			{"NewProtocol", proto},
			{"NewInternalPort", strconv.Itoa(int(r.InternalPort))},
			{"NewInternalClient", c.client.String()},
			{"NewEnabled", "1"},
			{"NewPortMappingDescription", upnpMappingDesc},
			{"NewLeaseDuration", strconv.Itoa(int(lease))},
		}
	}
	ext := r.ExternalPort
	if ext == 0 && strings.HasSuffix(c.service.Type, upnpServiceIPv2Suffix) {
		out, err := c.call(ctx, "AddAnyPortMapping", args(r.InternalPort, lease))
		if err != nil {
			return Mapping{}, err
		}
		n, err := strconv.ParseUint(out["NewReservedPort"], 10, 16)
		if err != nil || n == 0 {
			return Mapping{}, fmt.Errorf("upnp: reserved port %q", truncate(out["NewReservedPort"]))
		}
		ext = uint16(n)
	} else {
		if ext == 0 {
			ext = r.InternalPort
		}
		_, err = c.call(ctx, "AddPortMapping", args(ext, lease))
		var re *RefusedError
		if errors.As(err, &re) && re.Code == upnpOnlyPermanent {
			lease = 0
			_, err = c.call(ctx, "AddPortMapping", args(ext, 0))
		}
		if err != nil {
			return Mapping{}, err
		}
	}
	m := Mapping{Method: UPnP, Protocol: r.Protocol, InternalPort: r.InternalPort,
		Lifetime: time.Duration(lease) * time.Second}
	if lease > 0 {
		m.Expires = time.Now().Add(m.Lifetime)
	}
	addr := netip.IPv4Unspecified()
	if a, err := c.ExternalAddress(ctx); err == nil {
		addr = a
	}
	m.External = netip.AddrPortFrom(addr, ext)
	return m, nil
}

// Unmap deletes a mapping; one that is already gone is no error.
func (c *UPnPClient) Unmap(ctx context.Context, m Mapping) error {
	proto, err := upnpProto(m.Protocol)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, "DeletePortMapping", []soapArg{
		{"NewRemoteHost", ""},
		{"NewExternalPort", strconv.Itoa(int(m.External.Port()))},
		{"NewProtocol", proto},
	})
	var re *RefusedError
	if errors.As(err, &re) && re.Code == upnpNoSuchEntry {
		return nil
	}
	return err
}
