package cli

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(&command{
		path:  "cluster elect-leaders",
		args:  "[TOPIC ...]",
		short: "hand each partition's leadership to its preferred replica (its first) now, for the topics named or all of them (as kafka-leader-election --election-type preferred)",
		setup: func(*pflag.FlagSet) runFunc {
			return func(e *env, args []string) error {
				for _, a := range args {
					if a == "" {
						return usagef("cluster elect-leaders", "a topic name is empty")
					}
				}
				return electLeaders(e, args)
			}
		},
	})
}

// electOut is cluster elect-leaders' JSON output.
type electOut struct {
	Elected   []electPartition `json:"elected"`    // now led by their preferred replica
	NotNeeded int              `json:"not_needed"` // led by it already
	Failed    []electPartition `json:"failed"`
}

type electPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Error     string `json:"error,omitempty"`
}

// electLeaders asks for preferred leader elections (ElectLeaders, type PREFERRED) of every
// partition of topics (all topics when empty). Partitions whose election failed make it
// return an error after the output.
func electLeaders(e *env, topics []string) error {
	cl, err := e.connect()
	if err != nil {
		return err
	}
	adm, err := e.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	req := kmsg.NewPtrElectLeadersRequest()
	req.ElectionType = 0 // preferred
	req.TimeoutMillis = int32(e.timeout / time.Millisecond)
	if len(topics) > 0 {
		details, err := adm.ListTopics(ctx, topics...)
		if err != nil {
			return err
		}
		for _, name := range topics {
			d := details[name]
			if d.Err != nil {
				return topicErr(name, d.Err)
			}
			rt := kmsg.NewElectLeadersRequestTopic()
			rt.Topic = name
			for p := range d.Partitions {
				rt.Partitions = append(rt.Partitions, p)
			}
			slices.Sort(rt.Partitions)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("elect leaders: %w", err)
	}
	out := electOut{Elected: []electPartition{}, Failed: []electPartition{}}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			ep := electPartition{Topic: t.Topic, Partition: p.Partition}
			err := kerr.ErrorForCode(p.ErrorCode)
			switch {
			case err == nil:
				out.Elected = append(out.Elected, ep)
			case errors.Is(err, kerr.ElectionNotNeeded):
				out.NotNeeded++
			default:
				ep.Error = err.Error()
				if p.ErrorMessage != nil && *p.ErrorMessage != "" {
					ep.Error += " (" + *p.ErrorMessage + ")"
				}
				out.Failed = append(out.Failed, ep)
			}
		}
	}
	byName := func(a, b electPartition) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	}
	slices.SortFunc(out.Elected, byName)
	slices.SortFunc(out.Failed, byName)
	if e.json() {
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		if len(out.Elected)+len(out.Failed) > 0 {
			t := newTable(e.stdout, "TOPIC", "PARTITION", "RESULT")
			for _, p := range out.Elected {
				t.row(p.Topic, p.Partition, "elected")
			}
			for _, p := range out.Failed {
				t.row(p.Topic, p.Partition, p.Error)
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stdout, "%d partitions now led by their preferred replica, %d led by it already, %d failed\n",
			len(out.Elected), out.NotNeeded, len(out.Failed))
	}
	if len(out.Failed) > 0 {
		return fmt.Errorf("%d partitions did not get their preferred leader", len(out.Failed))
	}
	return nil
}
