package portmap

import (
	"errors"
	"fmt"
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
	d := newXMLScanner(b)
	sawRoot := false
	for {
		t, err := d.Next()
		if errors.Is(err, errXMLEnd) {
			break
		}
		if err != nil {
			return igdService{}, "", fmt.Errorf("device description: %w", err)
		}
		switch t.Kind {
		case xmlStart:
			if len(stack) == 0 {
				if sawRoot || t.Name != "root" {
					return igdService{}, "", fmt.Errorf("device description: root element <%s>", truncate(t.Name))
				}
				sawRoot = true
			}
			if len(stack) >= maxXMLDepth {
				return igdService{}, "", errors.New("device description: nested too deep")
			}
			stack = append(stack, t.Name)
			text.Reset()
			if t.Name == "service" {
				cur = igdService{}
			}
		case xmlText:
			if text.Len()+len(t.Text) > 2048 {
				return igdService{}, "", errors.New("device description: element text too long")
			}
			text.WriteString(t.Text)
		case xmlEnd:
			s := strings.TrimSpace(text.String())
			text.Reset()
			parent := ""
			if len(stack) >= 2 {
				parent = stack[len(stack)-2]
			}
			switch {
			case t.Name == "URLBase" && len(stack) == 2:
				urlBase = s
			case parent == "service" && t.Name == "serviceType":
				cur.Type = s
			case parent == "service" && t.Name == "controlURL":
				cur.Control = s
			case t.Name == "service":
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
