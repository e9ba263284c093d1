package portmap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
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
		xml.EscapeText(&b, []byte(a.Value))
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
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var stack []string
	var text strings.Builder
	args := map[string]string{}
	var fault *soapFault
	sawResponse, sawEnvelope := false, false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("SOAP reply: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch len(stack) {
			case 0:
				if sawEnvelope || t.Name.Local != "Envelope" {
					return nil, fmt.Errorf("SOAP reply: root element <%s>", truncate(t.Name.Local))
				}
				sawEnvelope = true
			case 2:
				if stack[1] != "Body" {
					break
				}
				switch t.Name.Local {
				case action + "Response":
					sawResponse = true
				case "Fault":
					fault = &soapFault{Code: -1}
				default:
					return nil, fmt.Errorf("SOAP reply: unexpected <%s>", truncate(t.Name.Local))
				}
			}
			if len(stack) >= maxXMLDepth {
				return nil, errors.New("SOAP reply: nested too deep")
			}
			stack = append(stack, t.Name.Local)
			text.Reset()
		case xml.CharData:
			if text.Len()+len(t) > 2048 {
				return nil, errors.New("SOAP reply: element text too long")
			}
			text.Write(t)
		case xml.EndElement:
			s := strings.TrimSpace(text.String())
			text.Reset()
			switch {
			case len(stack) == 4 && sawResponse && stack[1] == "Body":
				args[t.Name.Local] = s
			case fault != nil && t.Name.Local == "errorCode":
				n, err := strconv.Atoi(s)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("SOAP fault: errorCode %q", truncate(s))
				}
				fault.Code = n
			case fault != nil && t.Name.Local == "errorDescription":
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
