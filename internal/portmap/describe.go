package portmap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Services that can map a port, best first.
var wanServices = []string{
	"urn:schemas-upnp-org:service:WANIPConnection:2",
	"urn:schemas-upnp-org:service:WANIPConnection:1",
	"urn:schemas-upnp-org:service:WANPPPConnection:1",
}

// igdService is a WAN connection service of an Internet gateway.
type igdService struct {
	Type    string // one of wanServices
	Control string // control URL as written
}

const maxXMLDepth = 32

// parseDescription reads a UPnP device description and returns its best
// WAN connection service and the URLBase ("" when absent).
func parseDescription(b []byte) (igdService, string, error) {
	var best igdService
	rank := len(wanServices)
	var urlBase string
	var stack []string
	var text strings.Builder
	var cur igdService // the <service> being read
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	sawRoot := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return igdService{}, "", fmt.Errorf("device description: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				if sawRoot || t.Name.Local != "root" {
					return igdService{}, "", fmt.Errorf("device description: root element <%s>", truncate(t.Name.Local))
				}
				sawRoot = true
			}
			if len(stack) >= maxXMLDepth {
				return igdService{}, "", errors.New("device description: nested too deep")
			}
			stack = append(stack, t.Name.Local)
			text.Reset()
			if t.Name.Local == "service" {
				cur = igdService{}
			}
		case xml.CharData:
			if text.Len()+len(t) > 2048 {
				return igdService{}, "", errors.New("device description: element text too long")
			}
			text.Write(t)
		case xml.EndElement:
			s := strings.TrimSpace(text.String())
			text.Reset()
			parent := ""
			if len(stack) >= 2 {
				parent = stack[len(stack)-2]
			}
			switch {
			case t.Name.Local == "URLBase" && len(stack) == 2:
				urlBase = s
			case parent == "service" && t.Name.Local == "serviceType":
				cur.Type = s
			case parent == "service" && t.Name.Local == "controlURL":
				cur.Control = s
			case t.Name.Local == "service":
				for i, w := range wanServices {
					if cur.Type == w && cur.Control != "" && i < rank {
						best, rank = cur, i
					}
				}
			}
			stack = stack[:len(stack)-1]
		}
	}
	if !sawRoot {
		return igdService{}, "", errors.New("device description: no root element")
	}
	if rank == len(wanServices) {
		return igdService{}, "", errors.New("device description: no WANIPConnection or WANPPPConnection service")
	}
	return best, urlBase, nil
}
