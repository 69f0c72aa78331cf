// Package e2e tests built `sluice` processes from the outside, the way users meet them:
// real `sluice serve` processes started by internal/testnode, driven over TCP by franz-go,
// kcat, kafka-python (/usr/bin/python3 with Debian's python3-kafka) and the sluice CLI
// binary itself. Tests that need kcat or kafka-python skip with a message when those are
// not installed (.ci/run installs them); consumer group tests skip while the server does
// not advertise FindCoordinator.
//
// The package holds tests only; testdata/ holds the kafka-python script.
package e2e
