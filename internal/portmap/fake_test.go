package portmap

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePMP is a PCP and NAT-PMP server on loopback, as a router's: it keeps
// a table of mappings and answers as RFC 6887 and RFC 6886 say.
type fakePMP struct {
	conn *net.UDPConn

	mu        sync.Mutex // guards everything below
	pcp, pmp  bool       // which protocols it speaks
	refuse    byte       // a non-zero result code for every MAP
	start     time.Time  // epoch 0
	maps      map[string]uint16
	requests  int
	hostile   bool   // answer garbage and foreign replies before the real one
	otherPort uint16 // grant this external port instead of the asked one
}

func newFakePMP(t *testing.T, pcp, pmp bool) *fakePMP {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePMP{conn: c, pcp: pcp, pmp: pmp, start: time.Now(), maps: map[string]uint16{}}
	t.Cleanup(func() { c.Close() })
	go f.serve()
	return f
}

func (f *fakePMP) port() uint16 { return uint16(f.conn.LocalAddr().(*net.UDPAddr).Port) }

// reboot forgets every mapping and restarts the epoch.
func (f *fakePMP) reboot() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maps = map[string]uint16{}
	f.start = time.Now()
}

func (f *fakePMP) mapping(proto string, internal uint16) (uint16, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.maps[fmt.Sprint(proto, internal)]
	return p, ok
}

// store is a MAP request's effect on the table (f.mu held): lifetime 0
// deletes the mapping (ok false), else it maps internal to the external
// port asked (or otherPort) and returns that port.
func (f *fakePMP) store(proto string, internal, asked uint16, lifetime uint32) (ext uint16, ok bool) {
	key := fmt.Sprint(proto, internal)
	if lifetime == 0 {
		delete(f.maps, key)
		return 0, false
	}
	ext = asked
	if f.otherPort != 0 {
		ext = f.otherPort
	}
	f.maps[key] = ext
	return ext, true
}

func (f *fakePMP) serve() {
	buf := make([]byte, 2000)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		for _, r := range f.answer(buf[:n]) {
			f.conn.WriteToUDPAddrPort(r, from)
		}
	}
}

func (f *fakePMP) epoch() uint32 { return uint32(time.Since(f.start) / time.Second) }

func (f *fakePMP) answer(req []byte) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if len(req) < 2 {
		return nil
	}
	var out [][]byte
	if f.hostile {
		out = append(out, []byte("garbage"), make([]byte, 60), []byte{2, 0x81, 0, 0})
	}
	switch req[0] {
	case 2:
		if !f.pcp {
			if f.pmp { // a NAT-PMP server's answer to an unknown version
				r := make([]byte, 8)
				r[1], r[3] = 128+req[1]&0x7f, 1
				binary.BigEndian.PutUint32(r[4:], f.epoch())
				out = append(out, r)
			}
			return out
		}
		resp := make([]byte, len(req))
		copy(resp, req)
		resp[1] |= 0x80
		binary.BigEndian.PutUint32(resp[8:12], f.epoch())
		clear(resp[12:24])
		if req[1] == pcpOpAnnounce {
			return append(out, resp[:24])
		}
		m := resp[24:]
		if f.hostile { // someone else's nonce first
			bad := append([]byte(nil), resp...)
			bad[24] ^= 0xff
			out = append(out, bad)
		}
		if f.refuse != 0 {
			resp[3] = f.refuse
			return append(out, resp)
		}
		ext, ok := f.store(map[byte]string{6: "tcp", 17: "udp"}[m[12]], binary.BigEndian.Uint16(m[16:18]),
			binary.BigEndian.Uint16(m[18:20]), binary.BigEndian.Uint32(req[4:8]))
		if !ok {
			return append(out, resp)
		}
		binary.BigEndian.PutUint16(m[18:20], ext)
		a := netip.MustParseAddr("10.77.0.2").As16()
		copy(m[20:36], a[:])
		return append(out, resp)
	case 0:
		if !f.pmp {
			return out
		}
		if req[1] == 0 && len(req) == 2 {
			r := make([]byte, 12)
			r[1] = 128
			binary.BigEndian.PutUint32(r[4:], f.epoch())
			copy(r[8:], []byte{10, 77, 0, 2})
			return append(out, r)
		}
		if len(req) != 12 || (req[1] != 1 && req[1] != 2) {
			return out
		}
		r := make([]byte, 16)
		r[1] = 128 + req[1]
		binary.BigEndian.PutUint32(r[4:], f.epoch())
		copy(r[8:10], req[4:6])
		if f.refuse != 0 {
			r[3] = f.refuse
			return append(out, r)
		}
		ext, ok := f.store(map[byte]string{1: "udp", 2: "tcp"}[req[1]], binary.BigEndian.Uint16(req[4:6]),
			binary.BigEndian.Uint16(req[6:8]), binary.BigEndian.Uint32(req[8:12]))
		if !ok {
			return append(out, r)
		}
		binary.BigEndian.PutUint16(r[10:12], ext)
		copy(r[12:16], req[8:12])
		return append(out, r)
	}
	return out
}

// fakeIGD is a UPnP Internet gateway on loopback: SSDP on a UDP port, the
// description and the control URL over HTTP.
type fakeIGD struct {
	ssdp    *net.UDPConn
	http    *http.Server
	httpURL string

	mu       sync.Mutex        // guards everything below
	service  string            // the WAN service type offered
	location string            // LOCATION sent in SSDP replies; "" for our own
	control  string            // controlURL in the description
	maps     map[string]string // "TCP 5000" -> internal client
	leases   map[string]string
	fault    int // a UPnP error code for every AddPortMapping
	permOnly bool
	calls    []string
}

func newFakeIGD(t *testing.T, service string) *fakeIGD {
	t.Helper()
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIGD{ssdp: u, service: service, control: "/ctl/IPConn", maps: map[string]string{}, leases: map[string]string{}}
	f.httpURL = "http://" + l.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/rootDesc.xml", f.describe)
	mux.HandleFunc("/ctl/IPConn", f.soap)
	f.http = &http.Server{Handler: mux}
	go f.http.Serve(l)
	go f.serveSSDP()
	t.Cleanup(func() { u.Close(); f.http.Close() })
	return f
}

func (f *fakeIGD) ssdpPort() uint16 { return uint16(f.ssdp.LocalAddr().(*net.UDPAddr).Port) }

func (f *fakeIGD) serveSSDP() {
	buf := make([]byte, 2000)
	for {
		n, from, err := f.ssdp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if !strings.HasPrefix(string(buf[:n]), "M-SEARCH * HTTP/1.1\r\n") {
			continue
		}
		f.mu.Lock()
		loc := f.location
		f.mu.Unlock()
		if loc == "" {
			loc = f.httpURL + "/rootDesc.xml"
		}
		f.ssdp.WriteToUDPAddrPort([]byte("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: "+igdST+
			"\r\nUSN: uuid:x::"+igdST+"\r\nEXT:\r\nSERVER: fake UPnP/1.1\r\nLOCATION: "+loc+"\r\n\r\n"), from)
	}
}

func (f *fakeIGD) describe(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(w, `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F</controlURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<serviceList><service><serviceType>%s</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>%s</controlURL><eventSubURL>/evt/IPConn</eventSubURL><SCPDURL>/WANIPCn.xml</SCPDURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>`, f.service, f.control)
}

func (f *fakeIGD) soap(w http.ResponseWriter, r *http.Request) {
	action := r.Header.Get("SOAPAction")
	_, action, _ = strings.Cut(strings.Trim(action, `"`), "#")
	buf := make([]byte, 8192)
	n, _ := r.Body.Read(buf)
	body := string(buf[:n])
	arg := func(name string) string {
		_, v, _ := strings.Cut(body, "<"+name+">")
		v, _, _ = strings.Cut(v, "</"+name+">")
		return v
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, action)
	fault := func(code int, desc string) {
		w.WriteHeader(500)
		fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code, desc)
	}
	out := ""
	key := arg("NewProtocol") + " " + arg("NewExternalPort")
	switch action {
	case "AddPortMapping":
		if f.fault != 0 {
			fault(f.fault, "refused")
			return
		}
		if f.permOnly && arg("NewLeaseDuration") != "0" {
			fault(725, "OnlyPermanentLeasesSupported")
			return
		}
		f.maps[key] = arg("NewInternalClient") + ":" + arg("NewInternalPort")
		f.leases[key] = arg("NewLeaseDuration")
	case "DeletePortMapping":
		if _, ok := f.maps[key]; !ok {
			fault(714, "NoSuchEntryInArray")
			return
		}
		delete(f.maps, key)
	case "GetExternalIPAddress":
		out = "<NewExternalIPAddress>10.77.0.2</NewExternalIPAddress>"
	default:
		fault(401, "Invalid Action")
		return
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="%s">%s</u:%sResponse></s:Body></s:Envelope>`, action, f.service, out, action)
}
