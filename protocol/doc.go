// Package protocol serves the Kafka protocol over TCP: framing, version negotiation, one
// file per API key, and the translation of errors into Kafka error codes (which happens in
// this package only).
//
// A connection has a reader goroutine, which reads 4-byte size-prefixed frames (the size
// checked against Config.MaxRequestBytes before anything is allocated), decodes request
// header v0-v2 and the body with kmsg, and runs the handler; and a writer goroutine, which
// encodes the responses and writes them in request order, gathering small ones into one
// write. Clients may pipeline; a handler that waits (a long-poll fetch) holds back its own
// connection only. Produce submits its batches in request order on the reader and returns
// a deferred response that the writer completes (waits for durability) before writing
// it, so pipelined produce requests share fsyncs. acks=0 produce gets no response. A
// malformed frame, an unknown key or version, or a handler panic closes that connection
// with a log line; the server keeps serving the others.
//
// Each API key has a file named after it (00_produce.go, 18_api_versions.go) that
// registers its handler and version range from init; ApiVersions answers from that table,
// so it lists exactly what is implemented:
//
//	// Produce: v3-v11.
//	func init() { register(kmsg.Produce, 3, 11, (*Server).produce) }
//
//	func (s *Server) produce(r *Request) (kmsg.Response, error) {
//		req := r.Body.(*kmsg.ProduceRequest)
//		resp := req.ResponseKind().(*kmsg.ProduceResponse)
//		...
//		return resp, nil
//	}
//
// Parts of the server with their own state and lifetime (the consumer group coordinator)
// register a Service from init with registerService; New starts them and Shutdown closes
// them after the connections finish; handlers find theirs with s.service(name).
//
// Usage:
//
//	srv, err := protocol.New(protocol.Config{NodeID: 0, Controller: ctrl, Replicator: repl, ...})
//	go srv.Serve(ln)
//	...
//	srv.Shutdown(ctx) // stop accepting, finish in-flight requests
package protocol
