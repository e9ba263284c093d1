// Package logx makes natmap's loggers: one line per event, on stderr for
// the command line, in syslog for the daemon (so OpenWrt's logread shows
// it).
package logx

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"log/syslog"
	"strings"
	"sync"
)

// Level reads NATMAP_LOG-style names: "debug", else info.
func Level(name string) slog.Level {
	if strings.EqualFold(name, "debug") {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// Stderr logs text lines with a timestamp to w.
func Stderr(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// Syslog logs to the local syslog daemon (/dev/log) under tag; addr ""
// means the system's socket. Lines carry no timestamp: syslog adds it.
func Syslog(network, addr, tag string, level slog.Level) (*slog.Logger, error) {
	w, err := syslog.Dial(network, addr, syslog.LOG_DAEMON|syslog.LOG_INFO, tag)
	if err != nil {
		return nil, err
	}
	return slog.New(&syslogHandler{w: w, level: level, mu: &sync.Mutex{}}), nil
}

// syslogHandler formats records as slog's text lines, without time, and
// sends each at the syslog priority of its level.
type syslogHandler struct {
	w     *syslog.Writer
	level slog.Level
	attrs []slog.Attr
	group string
	mu    *sync.Mutex // one buffer, shared by the handler's clones
	buf   bytes.Buffer
}

func (h *syslogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	var th slog.Handler = slog.NewTextHandler(&h.buf, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	if len(h.attrs) > 0 {
		th = th.WithAttrs(h.attrs)
	}
	if h.group != "" {
		th = th.WithGroup(h.group)
	}
	if err := th.Handle(ctx, r); err != nil {
		return err
	}
	line := strings.TrimSuffix(h.buf.String(), "\n")
	switch {
	case r.Level >= slog.LevelError:
		return h.w.Err(line)
	case r.Level >= slog.LevelWarn:
		return h.w.Warning(line)
	case r.Level >= slog.LevelInfo:
		return h.w.Info(line)
	default:
		return h.w.Debug(line)
	}
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := &syslogHandler{w: h.w, level: h.level, group: h.group, mu: h.mu}
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return c
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	c := &syslogHandler{w: h.w, level: h.level, attrs: h.attrs, mu: h.mu, group: name}
	if h.group != "" {
		c.group = h.group + "." + name
	}
	return c
}

// LineWriter logs each line written to it (a notify script's output) at
// level, with attrs. A line longer than 4 KiB is logged in pieces; a last
// line without a newline is logged by Close.
func LineWriter(log *slog.Logger, level slog.Level, msg string, attrs ...any) io.WriteCloser {
	return &lineWriter{log: log, level: level, msg: msg, attrs: attrs}
}

type lineWriter struct {
	log   *slog.Logger
	level slog.Level
	msg   string
	attrs []any

	mu  sync.Mutex
	buf []byte
}

const maxLine = 4096

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		switch {
		case i >= 0 && i <= maxLine:
			w.emit(w.buf[:i])
			w.buf = w.buf[i+1:]
		case len(w.buf) >= maxLine:
			w.emit(w.buf[:maxLine])
			w.buf = w.buf[maxLine:]
		default:
			return len(p), nil
		}
	}
}

func (w *lineWriter) emit(line []byte) {
	w.log.Log(context.Background(), w.level, w.msg, append(w.attrs, "line", string(line))...)
}

func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
	return nil
}
