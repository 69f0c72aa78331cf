// Command sluice is the Sluice server (`sluice serve`) and its client (every other
// subcommand: topic, produce, consume, group, cluster, bench; see `sluice help`).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluicemq/sluice/cli"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "serve" {
		os.Exit(serve(args[1:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
