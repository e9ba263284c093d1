package httpserve

import (
	"net/http"
	"testing"
)

func TestListen(t *testing.T) {
	var addr string
	t.Run("serve", func(t *testing.T) {
		addr = Listen(t, "127.0.0.1", nil)
		resp, err := http.Head("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("HEAD /: %s, want 200", resp.Status)
		}
	})
	if resp, err := http.Head("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		t.Error("still serving after the test")
	}
}
