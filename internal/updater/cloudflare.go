package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/natmap-go/natmap/internal/httpc"
)

// cloudflare: the rfc2136 records through Cloudflare's DNS API v4 with an
// API token (permission DNS Write): for each record, list the records of
// its name and type (GET /zones/{zone_id}/dns_records?type=&name.exact=),
// then overwrite the first (PUT .../dns_records/{id}), delete the others,
// or create one (POST .../dns_records). Needs https, hence curl on the
// router (see package httpc).
var cloudflareKind = kind{
	options: append([]string{"zone_id", "api_url"}, recordOptions...),
	secrets: []string{"api_token"},
	build:   newCloudflare,
}

const defaultCloudflareURL = "https://api.cloudflare.com/client/v4"

type cloudflare struct {
	base   string // api_url, a hidden option for tests
	zone   string
	token  string
	recs   recordSpec
	client httpc.Client
}

func newCloudflare(o *opts) (Updater, error) {
	c := &cloudflare{base: strings.TrimRight(o.str("api_url"), "/"), zone: o.required("zone_id"), token: o.required("api_token"), recs: readRecords(o)}
	if c.base == "" {
		c.base = defaultCloudflareURL
	}
	if _, err := httpc.ParseURL(c.base); err != nil {
		o.fail("api_url", err)
	}
	if strings.ContainsAny(c.zone, "/?#& ") {
		o.fail("zone_id", errors.New("not a zone identifier (32 hex digits, on the zone's Overview page)"))
	}
	if strings.ContainsAny(c.token, "\r\n") {
		o.fail("api_token", errors.New("has a line break"))
	}
	return c, nil
}

// cfRecord is a DNS record as the API reads and writes it.
type cfRecord struct {
	ID      string  `json:"id,omitempty"`
	Type    string  `json:"type"`
	Name    string  `json:"name"`
	Content string  `json:"content,omitempty"`
	Data    *cfData `json:"data,omitempty"`
	TTL     uint32  `json:"ttl"`
	Proxied *bool   `json:"proxied,omitempty"`
}

type cfData struct {
	Priority uint16 `json:"priority"`
	Weight   uint16 `json:"weight"`
	Port     uint16 `json:"port"`
	Target   string `json:"target"`
}

// cfEnvelope wraps every answer.
type cfEnvelope struct {
	Success bool `json:"success"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Result json.RawMessage `json:"result"`
}

func (c *cloudflare) Update(ctx context.Context, f Fields) error {
	recs, err := c.recs.records(f)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := c.put(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

func (c *cloudflare) put(ctx context.Context, r record) error {
	want := cfRecord{Type: typeName(r.Type), Name: r.Name, TTL: max(r.TTL, 60)}
	switch r.Type {
	case typeA, typeAAAA:
		no := false
		want.Content, want.Proxied = r.Addr.String(), &no
	case typeTXT:
		want.Content = `"` + r.Text + `"`
	case typeSRV:
		d := cfData(r.SRV)
		want.Data = &d
	}
	var existing []cfRecord
	path := "/zones/" + c.zone + "/dns_records"
	if err := c.call(ctx, "GET", path+"?type="+want.Type+"&name.exact="+httpc.QueryEscape(r.Name), nil, &existing); err != nil {
		return err
	}
	body, _ := json.Marshal(want)
	if len(existing) == 0 {
		return c.call(ctx, "POST", path, body, nil)
	}
	if err := c.call(ctx, "PUT", path+"/"+existing[0].ID, body, nil); err != nil {
		return err
	}
	for _, e := range existing[1:] { // the RRset is replaced whole, as rfc2136 does
		if err := c.call(ctx, "DELETE", path+"/"+e.ID, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

func (c *cloudflare) call(ctx context.Context, method, path string, body []byte, result any) error {
	req := &httpc.Request{Method: method, URL: c.base + path, Body: body,
		Header: [][2]string{{"Authorization", "Bearer " + c.token}}}
	if body != nil {
		req.Header = append(req.Header, [2]string{"Content-Type", "application/json"})
	}
	resp, err := c.client.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("cloudflare: %w", err)
	}
	var env cfEnvelope
	jerr := json.Unmarshal(resp.Body, &env)
	if jerr == nil && !env.Success || resp.Status >= 300 {
		var msgs []string
		for _, e := range env.Errors {
			msgs = append(msgs, fmt.Sprintf("%d %s", e.Code, e.Message))
		}
		err := fmt.Errorf("cloudflare: %s %s: HTTP %d: %s", method, strings.SplitN(path, "?", 2)[0], resp.Status, strings.Join(msgs, "; "))
		if resp.Status == 401 || resp.Status == 403 {
			return Permanent(fmt.Errorf("%w (check api_token and zone_id)", err))
		}
		if resp.Status >= 400 && resp.Status < 500 && resp.Status != 429 {
			return Permanent(err)
		}
		return err
	}
	if jerr != nil {
		return fmt.Errorf("cloudflare: %s: bad answer: %w", method, jerr)
	}
	if result != nil {
		if err := json.Unmarshal(env.Result, result); err != nil {
			return fmt.Errorf("cloudflare: %s: bad result: %w", method, err)
		}
	}
	return nil
}
