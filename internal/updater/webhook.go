package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/natmap-go/natmap/internal/httpc"
)

// webhook: an HTTP request with a method, headers and a body template.
// {name} in the URL, a header value or the body is the mapping's field of
// that name (public_ip, public_port, ip4p, private_ip, private_port,
// protocol, section, comment): escaped for a query in the URL, as a JSON
// string's contents in a JSON body (Content-Type ...json, or a body
// starting with { or [). Without a body: a POST of a JSON object of the
// fields.
var webhookKind = kind{
	options: []string{"url", "method", "header", "body"},
	build:   newWebhook,
}

type webhook struct {
	url    string
	method string
	header [][2]string
	body   string
	isJSON bool
	client httpc.Client
}

func newWebhook(o *opts) (Updater, error) {
	w := &webhook{url: o.required("url"), method: strings.ToUpper(o.str("method")), body: o.c.optBody()}
	if w.url != "" {
		if _, err := httpc.ParseURL(w.url); err != nil {
			o.fail("url", err)
		}
	}
	if w.method == "" {
		w.method = "POST"
	}
	if strings.ContainsAny(w.method, " \t\r\n") {
		o.fail("method", errors.New("not a method"))
	}
	contentType := ""
	for _, h := range o.list("header") {
		k, v, ok := strings.Cut(h, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			o.fail("header", fmt.Errorf("%q: want 'Name: value'", k))
			continue
		}
		if strings.EqualFold(k, "Content-Type") {
			contentType = v
		}
		w.header = append(w.header, [2]string{k, v})
	}
	trimmed := strings.TrimSpace(w.body)
	switch {
	case w.body == "":
		w.isJSON = true
		if contentType == "" {
			w.header = append(w.header, [2]string{"Content-Type", "application/json"})
		}
	case contentType != "":
		w.isJSON = strings.Contains(strings.ToLower(contentType), "json")
	case strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "["):
		w.isJSON = true
		w.header = append(w.header, [2]string{"Content-Type", "application/json"})
	}
	return w, nil
}

// optBody keeps the body as written: spaces and line breaks are its own.
func (c Config) optBody() string {
	if v := c.Options["body"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// expand replaces {name} with the field's value, escaped by esc.
func expand(tmpl string, vars [][2]string, esc func(string) string) string {
	for _, kv := range vars {
		tmpl = strings.ReplaceAll(tmpl, "{"+kv[0]+"}", esc(kv[1]))
	}
	return tmpl
}

// jsonEscape is s as the inside of a JSON string.
func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func (w *webhook) Update(ctx context.Context, f Fields) error {
	vars := f.Vars()
	req := &httpc.Request{Method: w.method, URL: expand(w.url, vars, httpc.QueryEscape)}
	for _, h := range w.header {
		req.Header = append(req.Header, [2]string{h[0], expand(h[1], vars, func(s string) string { return strings.NewReplacer("\r", "", "\n", "").Replace(s) })})
	}
	switch {
	case w.body == "":
		obj := map[string]any{}
		for _, kv := range vars {
			obj[kv[0]] = kv[1]
		}
		obj["public_port"], obj["private_port"] = int(f.Public.Port()), int(f.Private.Port())
		req.Body, _ = json.Marshal(obj)
	case w.isJSON:
		req.Body = []byte(expand(w.body, vars, jsonEscape))
	default:
		req.Body = []byte(expand(w.body, vars, func(s string) string { return s }))
	}
	resp, err := w.client.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return httpStatusError("webhook", resp)
}

// httpStatusError turns a non-2xx answer into an error: permanent for a
// 4xx (wrong credentials, a request the server refuses), except those that
// mean "later" (408, 425, 429).
func httpStatusError(what string, resp *httpc.Response) error {
	if resp.Status >= 200 && resp.Status < 300 {
		return nil
	}
	err := fmt.Errorf("%s: HTTP %d%s", what, resp.Status, snippet(resp.Body))
	if resp.Status >= 400 && resp.Status < 500 && resp.Status != 408 && resp.Status != 425 && resp.Status != 429 {
		return Permanent(err)
	}
	return err
}

// snippet is the start of a response body, for an error message.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if s == "" {
		return ""
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return ": " + s
}
