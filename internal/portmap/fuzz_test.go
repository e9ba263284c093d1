package portmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
	"unicode/utf8"
)

// Each parser of what the router sends gets a fuzz target: it must never
// panic, and what it accepts must be consistent.

func FuzzParsePCP(f *testing.F) {
	ok := make([]byte, 60)
	ok[0], ok[1] = 2, 0x81
	ok[24+12] = 6
	f.Add(ok)
	f.Add(append(append([]byte(nil), ok...), 1, 0, 0, 4, 0, 0, 0, 0))
	f.Add([]byte{0, 129, 0, 1, 0, 0, 0, 5})
	f.Add(make([]byte, 24))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parsePCP(b)
		if err != nil || r.Version == 0 {
			return
		}
		if r.Version == pcpVersion && r.Op == pcpOpMap && r.Result == 0 && len(b) < pcpHeaderSz+pcpMapSz {
			t.Fatalf("accepted a short MAP reply of %d bytes", len(b))
		}
	})
}

func FuzzParseNATPMP(f *testing.F) {
	f.Add([]byte{0, 128, 0, 0, 0, 0, 0, 1, 10, 0, 0, 1})
	f.Add([]byte{0, 130, 0, 0, 0, 0, 0, 1, 0x13, 0x88, 0x13, 0x88, 0, 0, 0x0e, 0x10})
	f.Add([]byte{0, 129, 0, 3, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseNATPMP(b)
		if err != nil {
			return
		}
		if r.Result == 0 && r.Op != natpmpOpAddr && len(b) != natpmpMapRespSz {
			t.Fatalf("accepted a %d-byte map reply", len(b))
		}
		if r.Epoch != binary.BigEndian.Uint32(b[4:8]) {
			t.Fatal("epoch")
		}
	})
}

func FuzzParseSSDP(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nST: " + igdST + "\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nst: urn:schemas-upnp-org:service:WANIPConnection:2\r\nlocation: http://192.168.1.1/x\r\n\r\n"))
	f.Add([]byte("NOTIFY * HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseSSDP(b)
		if err != nil {
			return
		}
		if !r.Location.Host.Addr().Is4() || r.Location.Path == "" || r.Location.Path[0] != '/' {
			t.Fatalf("accepted LOCATION %v", r.Location)
		}
	})
}

func FuzzParseDescription(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><URLBase>http://192.168.1.1:5000</URLBase><device><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL>/ctl/IPConn</controlURL></service></serviceList></device></root>`))
	f.Add([]byte(`<root><device><deviceList><device><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType><controlURL>ctl</controlURL></service></serviceList></device></deviceList></device></root>`))
	f.Add([]byte(`<root><service><serviceType>x</serviceType></service></root><root/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		svc, _, err := parseDescription(b)
		if err != nil {
			return
		}
		if svc.Control == "" {
			t.Fatal("accepted a service without a control URL")
		}
	})
}

func FuzzParseSOAP(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalIPAddress>10.0.0.2</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`))
	f.Add([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><detail><UPnPError><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`))
	f.Add([]byte(`<Envelope><Body><AddPortMappingResponse/></Body></Envelope>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, action := range []string{"GetExternalIPAddress", "AddPortMapping"} {
			args, err := parseSOAP(b, action)
			if err == nil && args == nil {
				t.Fatal("success without arguments map")
			}
		}
	})
}

func TestResolveURL(t *testing.T) {
	base, err := parseHTTPURL("http://192.168.1.1:5000/desc/root.xml")
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{
		"/ctl/IPConn":                "http://192.168.1.1:5000/ctl/IPConn",
		"ctl":                        "http://192.168.1.1:5000/desc/ctl",
		"http://192.168.1.1:80/abc":  "http://192.168.1.1:80/abc",
		"http://router.lan/abc":      "",
		"https://192.168.1.1:5000/x": "",
	} {
		u, err := base.resolve(ref)
		if got := u.String(); (err == nil && got != want) || (err != nil && want != "") {
			t.Errorf("%q: %q %v, want %q", ref, got, err, want)
		}
	}
}

func FuzzXMLScanner(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><!-- c --><a:root xmlns:a="x" b='>'><b/>t&amp;&#x41;<![CDATA[<raw>]]></a:root>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>`))
	f.Add([]byte(`<a><b></a></b>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newXMLScanner(b)
		depth := 0
		for {
			tok, err := s.Next()
			if err != nil {
				if errors.Is(err, errXMLEnd) && depth != 0 {
					t.Fatalf("ended at depth %d", depth)
				}
				return
			}
			switch tok.Kind {
			case xmlStart:
				depth++
			case xmlEnd:
				depth--
			case xmlText:
				if !utf8.ValidString(tok.Text) {
					t.Fatal("invalid UTF-8 text")
				}
			}
			if depth < 0 {
				t.Fatal("more ends than starts")
			}
		}
	})
}

func TestXMLScanner(t *testing.T) {
	var got []string
	s := newXMLScanner([]byte(`<?xml version="1.0"?>` + "\n" + `<!-- c --><s:root xmlns:s="x" a='1>2'><b/>t&amp;&#x41;&#66;<![CDATA[<raw>]]></s:root>` + "\n"))
	for {
		tok, err := s.Next()
		if errors.Is(err, errXMLEnd) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(tok.Kind, tok.Name, tok.Text))
	}
	want := []string{"1root", "1b", "2b", "3t&AB", "3<raw>", "2root"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, bad := range []string{`<!DOCTYPE x><x/>`, `<a><b></a>`, `<a>&e;</a>`, `<a/><b/>`, `text<a/>`, `<a x=1/>`, `<a>`, ``, `<a>&#0;</a>`, "<a>\xff</a>"} {
		s := newXMLScanner([]byte(bad))
		var err error
		for err == nil {
			_, err = s.Next()
		}
		if errors.Is(err, errXMLEnd) {
			t.Errorf("%q accepted", bad)
		}
	}
}
