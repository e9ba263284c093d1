package portchecker

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/testkit/freeport"
)

// The checker answers 1 for a TCP port that accepts and a UDP service that
// echoes, 0 for a closed port, 400 for a request outside the contract.
func TestChecker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	c, url := Listen(t, "127.0.0.1")
	get := func(ip, port, proto string) (int, string) {
		t.Helper()
		u := strings.NewReplacer("{ip}", ip, "{port}", port, "{proto}", proto).Replace(url)
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, tcpPort, _ := net.SplitHostPort(ln.Addr().String())
	_, udpPort, _ := net.SplitHostPort(pc.LocalAddr().String())
	closed := strconv.Itoa(freeport.Get(t, "tcp", "127.0.0.1"))
	for _, c := range []struct{ port, proto, want string }{
		{tcpPort, "tcp", "1"}, {udpPort, "udp", "1"}, {closed, "tcp", "0"},
	} {
		if code, body := get("127.0.0.1", c.port, c.proto); code != 200 || body != c.want {
			t.Errorf("%s/%s: %d %q, want %q", c.port, c.proto, code, body, c.want)
		}
	}
	for _, q := range [][3]string{{"x", tcpPort, "tcp"}, {"127.0.0.1", "70000", "tcp"}, {"127.0.0.1", tcpPort, "sctp"}} {
		if code, _ := get(q[0], q[1], q[2]); code != http.StatusBadRequest {
			t.Errorf("%v: status %d, want 400", q, code)
		}
	}
	if all, yes := c.Checks(); all != 3 || yes != 2 {
		t.Errorf("Checks: %d, %d reached; want 3, 2", all, yes)
	}
}
