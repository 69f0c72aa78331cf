package protocol

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions: v0-4.
//   - Lists exactly the registration table.
//   - A version above 4 is answered, without decoding the body, with a v0 body carrying
//     UNSUPPORTED_VERSION and the whole table, so the client retries at a version we serve
//     (conn.serve calls apiVersionsFallback).
//   - The response header never has tagged fields, even at flexible versions (the writer
//     sees to that).
//   - No features are advertised.
func init() { register(kmsg.ApiVersions, 0, 4, (*Server).apiVersions) }

func (s *Server) apiVersions(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = apiVersionKeys()
	return resp, nil
}

// apiVersionsFallback is the v0 answer to an ApiVersions version we do not serve.
func apiVersionsFallback() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiVersionKeys()
	return resp
}

func apiVersionKeys() []kmsg.ApiVersionsResponseApiKey {
	table := registered()
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(table))
	for _, a := range table {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
		keys = append(keys, k)
	}
	return keys
}
