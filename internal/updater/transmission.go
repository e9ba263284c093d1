package updater

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/natmap-go/natmap/internal/httpc"
)

// transmission: RPC session-set peer-port, with basic auth and the
// X-Transmission-Session-Id handshake (a 409 answer carries the id to send).
var transmissionKind = kind{
	options: []string{"url", "username"},
	secrets: []string{"password"},
	build:   newTransmission,
}

const defaultTransmissionURL = "http://127.0.0.1:9091/transmission/rpc"

type transmission struct {
	url    string
	auth   string // Basic credentials, "" without a username
	client httpc.Client

	mu        sync.Mutex // guards sessionID
	sessionID string
}

func newTransmission(o *opts) (Updater, error) {
	t := &transmission{url: o.str("url")}
	if t.url == "" {
		t.url = defaultTransmissionURL
	}
	if _, err := httpc.ParseURL(t.url); err != nil {
		o.fail("url", err)
	}
	if u := o.str("username"); u != "" {
		t.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+o.str("password")))
	}
	return t, nil
}

func (t *transmission) Update(ctx context.Context, f Fields) error {
	body, _ := json.Marshal(map[string]any{"method": "session-set", "arguments": map[string]any{"peer-port": f.Public.Port()}})
	var reply struct {
		Result string `json:"result"`
	}
	if err := t.call(ctx, body, &reply); err != nil {
		return err
	}
	if reply.Result != "success" {
		return fmt.Errorf("transmission: session-set: %q", reply.Result)
	}
	return nil
}

// call posts an RPC request, fetching a session id once when asked to.
func (t *transmission) call(ctx context.Context, body []byte, reply any) error {
	for try := 0; ; try++ {
		t.mu.Lock()
		req := &httpc.Request{Method: "POST", URL: t.url, Body: body,
			Header: [][2]string{{"Content-Type", "application/json"}, {"X-Transmission-Session-Id", t.sessionID}}}
		t.mu.Unlock()
		if t.auth != "" {
			req.Header = append(req.Header, [2]string{"Authorization", t.auth})
		}
		resp, err := t.client.Do(ctx, req)
		if err != nil {
			return fmt.Errorf("transmission: %w", err)
		}
		switch {
		case resp.Status == 409 && try == 0:
			id := resp.Get("X-Transmission-Session-Id")
			if id == "" {
				return errors.New("transmission: 409 without a session id")
			}
			t.mu.Lock()
			t.sessionID = id
			t.mu.Unlock()
			continue
		case resp.Status == 401:
			return Permanent(errors.New("transmission: wrong username or password (HTTP 401)"))
		}
		if err := httpStatusError("transmission", resp); err != nil {
			return err
		}
		if err := json.Unmarshal(resp.Body, reply); err != nil {
			return fmt.Errorf("transmission: bad answer: %w", err)
		}
		return nil
	}
}
