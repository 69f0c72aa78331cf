// Package cli implements sluice's client subcommands: topic, produce, consume, group,
// cluster and bench. They speak the Kafka protocol through franz-go (kgo and kadm), so they
// work against any Kafka-compatible broker, not only sluice.
//
// cmd/sluice hands every subcommand except "serve" to Run:
//
//	os.Exit(cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr))
//
// Every command takes --brokers (env SLUICE_BROKERS, default 127.0.0.1:9092) and
// --format table|json. Errors print one line to stderr and give a non-zero exit code.
package cli
