// Package testnode runs real `sluice serve` processes for tests: it builds the binary once
// per test binary, picks free ports, starts nodes with their own data directories, waits
// until a node's Kafka port answers ApiVersions, and stops, kills, pauses, resumes and
// restarts them. Each node's stdout and stderr go to a log file that is printed through
// t.Logf when the test fails.
//
//	n := testnode.Start(t, testnode.Config{})           // one node, fresh data dir
//	cl, _ := kgo.NewClient(kgo.SeedBrokers(n.Addr))
//	...
//	n.Kill()                                             // kill -9
//	n.Start()                                            // same data dir and ports
//
// Three nodes forming a Raft cluster:
//
//	c := testnode.StartCluster(t, testnode.ClusterConfig{Nodes: 3, AdminFlag: "--admin-listen"})
//	testnode.WaitFor(t, 30*time.Second, func() bool { ... })
//	c.Nodes[0].Kill()
//
// SLUICE_TEST_BINARY names a prebuilt binary to use instead of building one (the Makefile
// sets it to bin/sluice, built just before). SLUICE_TEST_LOGS=1 prints node logs even when
// the test passes.
package testnode
