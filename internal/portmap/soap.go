package portmap

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// soapArg is one argument of a SOAP action, in order.
type soapArg struct{ Name, Value string }

func soapRequest(service, action string, args []soapArg) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\r\n" +
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">` +
		`<s:Body><u:` + action + ` xmlns:u="` + service + `">`)
	for _, a := range args {
		b.WriteString("<" + a.Name + ">")
		xmlEscaper.WriteString(&b, a.Value)
		b.WriteString("</" + a.Name + ">")
	}
	b.WriteString(`</u:` + action + `></s:Body></s:Envelope>`)
	return b.Bytes()
}

// soapFault is a UPnP error reply.
type soapFault struct {
	Code        int
	Description string
}

func (f *soapFault) Error() string {
	return fmt.Sprintf("UPnP error %d (%s)", f.Code, f.Description)
}

// parseSOAP reads a SOAP reply to action: the arguments of
// <actionResponse> for a success, or the UPnPError of a fault as a
// *soapFault error. Anything else is an error.
func parseSOAP(b []byte, action string) (map[string]string, error) {
	d := newXMLScanner(b)
	var stack []string
	var text strings.Builder
	args := map[string]string{}
	var fault *soapFault
	sawResponse, sawEnvelope := false, false
	for {
		t, err := d.Next()
		if errors.Is(err, errXMLEnd) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("SOAP reply: %w", err)
		}
		switch t.Kind {
		case xmlStart:
			switch len(stack) {
			case 0:
				if sawEnvelope || t.Name != "Envelope" {
					return nil, fmt.Errorf("SOAP reply: root element <%s>", truncate(t.Name))
				}
				sawEnvelope = true
			case 2:
				if stack[1] != "Body" {
					break
				}
				switch t.Name {
				case action + "Response":
					sawResponse = true
				case "Fault":
					fault = &soapFault{Code: -1}
				default:
					return nil, fmt.Errorf("SOAP reply: unexpected <%s>", truncate(t.Name))
				}
			}
			if len(stack) >= maxXMLDepth {
				return nil, errors.New("SOAP reply: nested too deep")
			}
			stack = append(stack, t.Name)
			text.Reset()
		case xmlText:
			if text.Len()+len(t.Text) > 2048 {
				return nil, errors.New("SOAP reply: element text too long")
			}
			text.WriteString(t.Text)
		case xmlEnd:
			s := strings.TrimSpace(text.String())
			text.Reset()
			switch {
			case len(stack) == 4 && sawResponse && stack[1] == "Body":
				args[t.Name] = s
			case fault != nil && t.Name == "errorCode":
				n, err := strconv.Atoi(s)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("SOAP fault: errorCode %q", truncate(s))
				}
				fault.Code = n
			case fault != nil && t.Name == "errorDescription":
				fault.Description = s
			}
			stack = stack[:len(stack)-1]
		}
	}
	switch {
	case !sawEnvelope:
		return nil, errors.New("SOAP reply: no Envelope")
	case fault != nil && fault.Code < 0:
		return nil, errors.New("SOAP reply: fault without a UPnP error code")
	case fault != nil:
		return nil, fault
	case !sawResponse:
		return nil, fmt.Errorf("SOAP reply: no %sResponse", action)
	}
	return args, nil
}
