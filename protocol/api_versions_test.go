package protocol

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestApiVersions(t *testing.T) {
	ts := startServer(t, "")
	c := dialRaw(t, ts.addr)
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1.0"
		resp := c.roundTrip(req, int32(v)).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d: error %d", v, resp.ErrorCode)
		}
		got := map[int16][2]int16{}
		for _, k := range resp.ApiKeys {
			got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
		}
		for _, want := range []struct{ key, min, max int16 }{{18, 0, 4}, {3, 0, 12}} {
			if got[want.key] != [2]int16{want.min, want.max} {
				t.Errorf("v%d: key %d advertised %v, want %d-%d", v, want.key, got[want.key], want.min, want.max)
			}
		}
	}
}

// A version above ours gets a v0 body with UNSUPPORTED_VERSION and our ranges, whatever
// the body holds, and the connection stays usable.
func TestApiVersionsFallback(t *testing.T) {
	ts := startServer(t, "")
	c := dialRaw(t, ts.addr)
	// Version 99 with a body we could not decode.
	frame := []byte{0, 0, 0, 0, 0, 18, 0, 99, 0, 0, 0, 7, 0, 1, 'x', 0xde, 0xad, 0xbe, 0xef}
	frame[3] = byte(len(frame) - 4)
	c.write(frame)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	c.recv(resp, 7)
	if resp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("error code %d, want UNSUPPORTED_VERSION", resp.ErrorCode)
	}
	found := false
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 18 && k.MinVersion == 0 && k.MaxVersion == 4 {
			found = true
		}
	}
	if !found {
		t.Fatalf("fallback does not list ApiVersions 0-4: %+v", resp.ApiKeys)
	}
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	if r := c.roundTrip(req, 8).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 {
		t.Fatalf("retry at v3: error %d", r.ErrorCode)
	}
}
