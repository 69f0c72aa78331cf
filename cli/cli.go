package cli

import (
	"context"
	"fmt"
	"io"
)

// Run runs one client subcommand. args exclude the program name, e.g.
// ["topic", "create", "orders", "-p", "3"]. It returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	_ = ctx
	fmt.Fprintln(stderr, "sluice: client commands are not built yet")
	_ = stdout
	return 2
}
