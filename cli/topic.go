package cli

import (
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func init() {
	register(&command{
		path:  "topic create",
		args:  "NAME",
		short: "create a topic",
		setup: func(fs *pflag.FlagSet) runFunc {
			partitions := fs.Int32P("partitions", "p", -1, "number of partitions (-1: the broker's default)")
			replication := fs.Int16P("replication-factor", "r", -1, "replicas per partition (-1: the broker's default)")
			configs := fs.StringArray("config", nil, "topic config `key=value`, repeatable (retention.ms=86400000)")
			ifNotExists := fs.Bool("if-not-exists", false, "succeed if the topic already exists")
			return func(e *env, args []string) error {
				name, err := oneArg("topic create", "NAME", args)
				if err != nil {
					return err
				}
				cfg, err := parseConfigs(*configs)
				if err != nil {
					return usagef("topic create", "%v", err)
				}
				return topicCreate(e, name, *partitions, *replication, cfg, *ifNotExists)
			}
		},
	})
	register(&command{
		path:  "topic list",
		short: "list topics",
		setup: func(fs *pflag.FlagSet) runFunc {
			internal := fs.Bool("internal", false, "include internal topics such as __consumer_offsets")
			return func(e *env, args []string) error {
				if len(args) != 0 {
					return usagef("topic list", "takes no arguments, got %q", args)
				}
				return topicList(e, *internal)
			}
		},
	})
	register(&command{
		path:  "topic describe",
		args:  "NAME",
		short: "show a topic's partitions (leader, replicas, ISR, epoch, offsets) and configs",
		setup: func(*pflag.FlagSet) runFunc {
			return func(e *env, args []string) error {
				name, err := oneArg("topic describe", "NAME", args)
				if err != nil {
					return err
				}
				return topicDescribe(e, name)
			}
		},
	})
	register(&command{
		path:  "topic delete",
		args:  "NAME",
		short: "delete a topic and its records",
		setup: func(*pflag.FlagSet) runFunc {
			return func(e *env, args []string) error {
				name, err := oneArg("topic delete", "NAME", args)
				if err != nil {
					return err
				}
				return topicDelete(e, name)
			}
		},
	})
}

// oneArg checks that args is exactly one non-empty argument.
func oneArg(cmd, what string, args []string) (string, error) {
	switch {
	case len(args) == 0:
		return "", usagef(cmd, "missing %s", what)
	case len(args) > 1:
		return "", usagef(cmd, "expects one %s, got %d arguments: %s", what, len(args), strings.Join(args, " "))
	case args[0] == "":
		return "", usagef(cmd, "%s is empty", what)
	}
	return args[0], nil
}

// parseConfigs turns ["k=v", ...] into a config map.
func parseConfigs(kvs []string) (map[string]*string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]*string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("config %q is not key=value", kv)
		}
		m[k] = &v
	}
	return m, nil
}

// topicIDString renders a topic ID the way Kafka's tools do: URL-safe base64 without
// padding.
func topicIDString(id kadm.TopicID) string {
	if id == (kadm.TopicID{}) {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// topicErr turns a Kafka error about topic name into a sentence.
func topicErr(name string, err error) error {
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return fmt.Errorf("topic %q does not exist", name)
	case errors.Is(err, kerr.TopicAlreadyExists):
		return fmt.Errorf("topic %q already exists", name)
	}
	return fmt.Errorf("topic %q: %w", name, err)
}

func topicCreate(e *env, name string, partitions int32, replication int16, configs map[string]*string, ifNotExists bool) error {
	adm, err := e.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, replication, configs, name)
	if err == nil {
		err = resp.Err
	}
	existed := false
	if errors.Is(err, kerr.TopicAlreadyExists) && ifNotExists {
		existed, err = true, nil
	}
	if err != nil {
		if resp.ErrMessage != "" {
			err = fmt.Errorf("%w (%s)", err, resp.ErrMessage)
		}
		return topicErr(name, err)
	}
	if existed {
		if e.json() {
			return writeJSON(e.stdout, map[string]any{"topic": name, "created": false})
		}
		_, err := fmt.Fprintf(e.stdout, "topic %s already exists\n", name)
		return err
	}
	if e.json() {
		return writeJSON(e.stdout, map[string]any{
			"topic":              name,
			"created":            true,
			"id":                 topicIDString(resp.ID),
			"partitions":         resp.NumPartitions,
			"replication_factor": resp.ReplicationFactor,
		})
	}
	_, err = fmt.Fprintf(e.stdout, "created topic %s: %s, replication factor %d\n", name, plural(int64(resp.NumPartitions), "partition"), resp.ReplicationFactor)
	return err
}

type topicSummary struct {
	Topic             string `json:"topic"`
	ID                string `json:"id,omitempty"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal,omitempty"`
}

func topicList(e *env, internal bool) error {
	adm, err := e.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	var details kadm.TopicDetails
	if internal {
		details, err = adm.ListTopicsWithInternal(ctx)
	} else {
		details, err = adm.ListTopics(ctx)
	}
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	list := make([]topicSummary, 0, len(details))
	for _, d := range details.Sorted() {
		if d.Err != nil {
			return topicErr(d.Topic, d.Err)
		}
		list = append(list, topicSummary{
			Topic:             d.Topic,
			ID:                topicIDString(d.ID),
			Partitions:        len(d.Partitions),
			ReplicationFactor: d.Partitions.NumReplicas(),
			Internal:          d.IsInternal,
		})
	}
	if e.json() {
		return writeJSON(e.stdout, list)
	}
	t := newTable(e.stdout, "TOPIC", "PARTITIONS", "REPLICAS", "ID")
	for _, s := range list {
		t.row(s.Topic, s.Partitions, s.ReplicationFactor, s.ID)
	}
	return t.flush()
}

type partitionDescription struct {
	Partition      int32   `json:"partition"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
	Offline        []int32 `json:"offline_replicas,omitempty"`
	LogStartOffset int64   `json:"log_start_offset"`
	LogEndOffset   int64   `json:"log_end_offset"`
	Error          string  `json:"error,omitempty"`
}

type configDescription struct {
	Name      string  `json:"name"`
	Value     *string `json:"value"`
	Source    string  `json:"source"`
	Sensitive bool    `json:"sensitive,omitempty"`
}

type topicDescription struct {
	topicSummary
	PartitionList []partitionDescription `json:"partition_details"`
	Configs       []configDescription    `json:"configs"`
}

func topicDescribe(e *env, name string) error {
	adm, err := e.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	details, err := adm.ListTopicsWithInternal(ctx, name)
	if err != nil {
		return fmt.Errorf("describe topic %q: %w", name, err)
	}
	d, ok := details[name]
	if !ok {
		return topicErr(name, kerr.UnknownTopicOrPartition)
	}
	if d.Err != nil {
		return topicErr(name, d.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, name)
	if err != nil {
		return fmt.Errorf("list start offsets of %q: %w", name, err)
	}
	ends, err := adm.ListEndOffsets(ctx, name)
	if err != nil {
		return fmt.Errorf("list end offsets of %q: %w", name, err)
	}
	desc := topicDescription{topicSummary: topicSummary{
		Topic:             name,
		ID:                topicIDString(d.ID),
		Partitions:        len(d.Partitions),
		ReplicationFactor: d.Partitions.NumReplicas(),
		Internal:          d.IsInternal,
	}}
	for _, p := range d.Partitions.Sorted() {
		pd := partitionDescription{
			Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: nonNil(p.Replicas), ISR: nonNil(p.ISR), Offline: p.OfflineReplicas,
			LogStartOffset: -1, LogEndOffset: -1,
		}
		var errs []string
		if p.Err != nil {
			errs = append(errs, p.Err.Error())
		}
		if o, ok := starts.Lookup(name, p.Partition); ok {
			if o.Err != nil {
				errs = append(errs, "log start offset: "+o.Err.Error())
			} else {
				pd.LogStartOffset = o.Offset
			}
		}
		if o, ok := ends.Lookup(name, p.Partition); ok {
			if o.Err != nil {
				errs = append(errs, "log end offset: "+o.Err.Error())
			} else {
				pd.LogEndOffset = o.Offset
			}
		}
		pd.Error = strings.Join(errs, "; ")
		desc.PartitionList = append(desc.PartitionList, pd)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, name)
	if err == nil {
		var rc kadm.ResourceConfig
		rc, err = rcs.On(name, nil)
		if err == nil && rc.Err != nil {
			err = rc.Err
		}
		for _, c := range rc.Configs {
			desc.Configs = append(desc.Configs, configDescription{
				Name: c.Key, Value: c.Value, Source: configSource(c.Source.String()), Sensitive: c.Sensitive,
			})
		}
	}
	if err != nil {
		return fmt.Errorf("describe configs of %q: %w", name, err)
	}
	sort.Slice(desc.Configs, func(i, j int) bool { return desc.Configs[i].Name < desc.Configs[j].Name })
	if e.json() {
		return writeJSON(e.stdout, desc)
	}
	t := newTable(e.stdout)
	t.row("TOPIC", desc.Topic)
	t.row("ID", desc.ID)
	t.row("PARTITIONS", desc.Partitions)
	t.row("REPLICATION", desc.ReplicationFactor)
	if desc.Internal {
		t.row("INTERNAL", "yes")
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout)
	t = newTable(e.stdout, "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "LOG-END", "ERROR")
	for _, p := range desc.PartitionList {
		t.row(p.Partition, p.Leader, p.LeaderEpoch, p.Replicas, p.ISR, p.LogStartOffset, p.LogEndOffset, p.Error)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(desc.Configs) == 0 {
		return nil
	}
	fmt.Fprintln(e.stdout)
	t = newTable(e.stdout, "CONFIG", "VALUE", "SOURCE")
	for _, c := range desc.Configs {
		v := "-"
		switch {
		case c.Sensitive:
			v = "(sensitive)"
		case c.Value != nil:
			v = *c.Value
		}
		t.row(c.Name, v, c.Source)
	}
	return t.flush()
}

func nonNil(xs []int32) []int32 {
	if xs == nil {
		return []int32{}
	}
	return xs
}

// configSource shortens kmsg's config source names: DYNAMIC_TOPIC_CONFIG -> topic.
func configSource(s string) string {
	switch s {
	case "DYNAMIC_TOPIC_CONFIG":
		return "topic"
	case "DEFAULT_CONFIG":
		return "default"
	case "STATIC_BROKER_CONFIG", "DYNAMIC_BROKER_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG":
		return "broker"
	}
	return strings.ToLower(s)
}

func topicDelete(e *env, name string) error {
	adm, err := e.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	resp, err := adm.DeleteTopic(ctx, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		if resp.ErrMessage != "" {
			err = fmt.Errorf("%w (%s)", err, resp.ErrMessage)
		}
		return topicErr(name, err)
	}
	if e.json() {
		return writeJSON(e.stdout, map[string]any{"topic": name, "deleted": true})
	}
	_, err = fmt.Fprintf(e.stdout, "deleted topic %s\n", name)
	return err
}
