package updater

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/natmap-go/natmap/internal/httpc"
)

// qbittorrent: WebUI API v2. Log in (POST /api/v2/auth/login), keep the
// SID cookie, set the listen port (POST /api/v2/app/setPreferences), and log
// in again when the session has expired (403).
var qbittorrentKind = kind{
	options: []string{"url", "username"},
	secrets: []string{"password"},
	build:   newQBittorrent,
}

const defaultQBittorrentURL = "http://127.0.0.1:8080"

type qbittorrent struct {
	base     string // without a trailing slash
	user     string
	password string
	client   httpc.Client

	mu     sync.Mutex // guards cookie
	cookie string     // "SID=..."; "" when logged out
}

func newQBittorrent(o *opts) (Updater, error) {
	q := &qbittorrent{base: strings.TrimRight(o.str("url"), "/"), user: o.str("username"), password: o.str("password")}
	if q.base == "" {
		q.base = defaultQBittorrentURL
	}
	if _, err := httpc.ParseURL(q.base); err != nil {
		o.fail("url", err)
	}
	return q, nil
}

func (q *qbittorrent) Update(ctx context.Context, f Fields) error {
	form := "json=" + httpc.QueryEscape(fmt.Sprintf(`{"listen_port":%d}`, f.Public.Port()))
	for try := 0; ; try++ {
		q.mu.Lock()
		cookie := q.cookie
		q.mu.Unlock()
		if cookie == "" {
			var err error
			if cookie, err = q.login(ctx); err != nil {
				return err
			}
		}
		resp, err := q.client.Do(ctx, &httpc.Request{Method: "POST", URL: q.base + "/api/v2/app/setPreferences", Body: []byte(form),
			Header: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}, {"Cookie", cookie}}})
		if err != nil {
			return fmt.Errorf("qbittorrent: %w", err)
		}
		if resp.Status == 403 && try == 0 { // the session expired
			q.mu.Lock()
			q.cookie = ""
			q.mu.Unlock()
			continue
		}
		return httpStatusError("qbittorrent: setPreferences", resp)
	}
}

func (q *qbittorrent) login(ctx context.Context) (string, error) {
	form := "username=" + httpc.QueryEscape(q.user) + "&password=" + httpc.QueryEscape(q.password)
	resp, err := q.client.Do(ctx, &httpc.Request{Method: "POST", URL: q.base + "/api/v2/auth/login", Body: []byte(form),
		Header: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}}})
	if err != nil {
		return "", fmt.Errorf("qbittorrent: login: %w", err)
	}
	if resp.Status == 403 {
		return "", Permanent(errors.New("qbittorrent: login refused (HTTP 403: too many failed logins, the IP is banned for a while)"))
	}
	if err := httpStatusError("qbittorrent: login", resp); err != nil {
		return "", err
	}
	if strings.TrimSpace(string(resp.Body)) != "Ok." {
		return "", Permanent(errors.New("qbittorrent: login failed: wrong username or password"))
	}
	// The session cookie is SID (QBT_SID_PORT in newer versions): keep
	// every cookie the login sets.
	var cookies []string
	for _, c := range resp.Values("Set-Cookie") {
		kv, _, _ := strings.Cut(c, ";")
		if kv = strings.TrimSpace(kv); strings.Contains(kv, "SID") {
			cookies = append(cookies, kv)
		}
	}
	if len(cookies) == 0 {
		return "", errors.New("qbittorrent: login answered without a SID cookie")
	}
	q.mu.Lock()
	q.cookie = strings.Join(cookies, "; ")
	q.mu.Unlock()
	return strings.Join(cookies, "; "), nil
}
