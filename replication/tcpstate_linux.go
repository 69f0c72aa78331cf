package replication

import (
	"net"

	"golang.org/x/sys/unix"
)

// tcpEstablished is Linux's TCP_ESTABLISHED socket state.
const tcpEstablished = 1

// connClosing says whether the kernel already knows conn's other end closed or reset it
// (its socket left the ESTABLISHED state), before any reader of conn has seen it.
func connClosing(conn net.Conn) bool {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	closing := false
	_ = raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		closing = err == nil && info.State != tcpEstablished
	})
	return closing
}
