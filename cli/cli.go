package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Exit codes returned by Run.
const (
	ExitOK    = 0 // the command did what it was asked
	ExitError = 1 // the command failed: broker unreachable, unknown topic, ...
	ExitUsage = 2 // the command line was wrong
)

// DefaultBrokers is used when neither --brokers nor SLUICE_BROKERS is set.
const DefaultBrokers = "127.0.0.1:9092"

// ErrUsage marks a wrong command line; Run returns ExitUsage for it.
var ErrUsage = errors.New("usage")

// UsageError is a wrong command line: an unknown command, flag or argument.
type UsageError struct {
	Command string // "topic create"
	Msg     string
}

func (e *UsageError) Error() string {
	if e.Command == "" {
		return e.Msg
	}
	return e.Command + ": " + e.Msg
}

func (e *UsageError) Unwrap() error { return ErrUsage }

func usagef(cmd, format string, args ...any) error {
	return &UsageError{Command: cmd, Msg: fmt.Sprintf(format, args...)}
}

// command is one leaf of the command tree.
type command struct {
	path  string // "topic create"
	args  string // "NAME", shown in usage
	short string
	// setup registers the command's own flags on fs, with fresh variables for each run,
	// and returns the function that runs the command once fs is parsed.
	setup func(fs *pflag.FlagSet) runFunc
}

// runFunc runs a command with its positional arguments.
type runFunc func(e *env, args []string) error

// commands is filled by each command's file in init.
var commands = map[string]*command{}

func register(c *command) { commands[c.path] = c }

// groupsOf are the first words that have subcommands.
func groupsOf() map[string][]string {
	g := map[string][]string{}
	for p := range commands {
		if first, rest, ok := strings.Cut(p, " "); ok {
			g[first] = append(g[first], rest)
		}
	}
	for _, v := range g {
		sort.Strings(v)
	}
	return g
}

// env is what every command gets: output streams, the global flags and lazily built
// clients.
type env struct {
	ctx     context.Context
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	brokers []string
	format  string // "table" or "json"
	timeout time.Duration
	cmd     string

	client *kgo.Client
	admin  *kadm.Client
}

// stdin is what produce reads; tests replace it.
var stdin io.Reader = os.Stdin

// Run runs one client subcommand. args exclude the program name, e.g.
// ["topic", "create", "orders", "-p", "3"]. It returns the process exit code: ExitOK,
// ExitError after printing one line to stderr, or ExitUsage for a wrong command line.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, stdin, stdout, stderr)
}

func runWith(ctx context.Context, args []string, in io.Reader, stdout, stderr io.Writer) int {
	cmd, rest, err := lookup(args)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		fmt.Fprintln(stderr, "run 'sluice help' for the list of commands")
		return ExitUsage
	}
	if cmd == nil { // help
		printUsage(stdout)
		return ExitOK
	}
	e := &env{ctx: ctx, stdin: in, stdout: stdout, stderr: stderr, cmd: cmd.path}
	defer e.close()

	fs := pflag.NewFlagSet("sluice "+cmd.path, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	brokers := fs.String("brokers", envOr("SLUICE_BROKERS", DefaultBrokers), "comma-separated Kafka bootstrap `host:port` list (env SLUICE_BROKERS)")
	format := fs.String("format", envOr("SLUICE_FORMAT", "table"), "output format: table or json (env SLUICE_FORMAT)")
	fs.DurationVar(&e.timeout, "timeout", 10*time.Second, "how long to wait for the brokers to answer a request")
	run := cmd.setup(fs)
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(rest); err != nil {
		fmt.Fprintf(stderr, "sluice %s: %v\n", cmd.path, err)
		fmt.Fprintf(stderr, "run 'sluice %s --help' for usage\n", cmd.path)
		return ExitUsage
	}
	if *help {
		printCommandUsage(stdout, cmd, fs)
		return ExitOK
	}
	switch *format {
	case "table", "json":
		e.format = *format
	default:
		fmt.Fprintf(stderr, "sluice %s: --format must be table or json, not %q\n", cmd.path, *format)
		return ExitUsage
	}
	e.brokers = splitList(*brokers)
	if len(e.brokers) == 0 {
		fmt.Fprintf(stderr, "sluice %s: --brokers is empty\n", cmd.path)
		return ExitUsage
	}
	if err := run(e, fs.Args()); err != nil {
		if errors.Is(err, ErrUsage) {
			fmt.Fprintf(stderr, "sluice %v\n", err)
			fmt.Fprintf(stderr, "run 'sluice %s --help' for usage\n", cmd.path)
			return ExitUsage
		}
		fmt.Fprintf(stderr, "sluice %s: %s\n", cmd.path, oneLine(err))
		return ExitError
	}
	return ExitOK
}

// lookup finds the command named by the leading words of args. A nil command with a nil
// error means help was asked for.
func lookup(args []string) (*command, []string, error) {
	// Global flags may come before the command words: they are moved behind them.
	var words, flags []string
	i := 0
	for i < len(args) && len(words) < 2 {
		a := args[i]
		if a == "-h" || a == "--help" {
			if len(words) == 0 {
				return nil, nil, nil
			}
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			flags = append(flags, a)
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !hasValue && (name == "brokers" || name == "format" || name == "timeout") && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
			i++
			continue
		}
		words = append(words, a)
		i++
		if _, leaf := commands[a]; leaf && len(words) == 1 {
			break
		}
	}
	rest := append(append([]string(nil), args[i:]...), flags...)
	if len(words) == 0 || words[0] == "help" {
		return nil, nil, nil
	}
	if c, ok := commands[words[0]]; ok {
		return c, rest, nil
	}
	subs, ok := groupsOf()[words[0]]
	if !ok {
		return nil, nil, usagef("", "unknown command %q", words[0])
	}
	if len(words) < 2 {
		return nil, nil, usagef("", "%s needs a subcommand: %s", words[0], strings.Join(subs, ", "))
	}
	if c, ok := commands[words[0]+" "+words[1]]; ok {
		return c, rest, nil
	}
	return nil, nil, usagef("", "unknown command %q; %s has: %s", words[0]+" "+words[1], words[0], strings.Join(subs, ", "))
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: sluice COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  serve                  run a broker (see 'sluice serve --help')")
	paths := make([]string, 0, len(commands))
	for p := range commands {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		c := commands[p]
		fmt.Fprintf(w, "  %-22s %s\n", strings.TrimSpace(c.path+" "+c.args), c.short)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every client command takes --brokers (env SLUICE_BROKERS, default "+DefaultBrokers+"),")
	fmt.Fprintln(w, "--format table|json and --timeout. 'sluice COMMAND --help' shows a command's flags.")
}

func printCommandUsage(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: sluice %s [flags]\n\n%s\n\nFlags:\n", strings.TrimSpace(c.path+" "+c.args), c.short)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// splitList splits a comma-separated list, dropping empty items and spaces.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// oneLine keeps an error message on one line.
func oneLine(err error) string {
	s := err.Error()
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", "; ")
}

// clientOpts are the options every client of a command shares.
func (e *env) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(e.brokers...),
		kgo.ClientID("sluice-cli"),
		kgo.DialTimeout(min(e.timeout, 5*time.Second)),
		kgo.RequestTimeoutOverhead(e.timeout),
		kgo.RetryTimeout(e.timeout),
	}
	return append(opts, extra...)
}

// connect builds the command's client and checks that a broker answers, so an
// unreachable cluster is one clear error instead of a hang.
func (e *env) connect(extra ...kgo.Opt) (*kgo.Client, error) {
	if e.client != nil {
		return e.client, nil
	}
	cl, err := kgo.NewClient(e.clientOpts(extra...)...)
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	if err := ping(e.ctx, cl, e.timeout); err != nil {
		cl.Close()
		return nil, fmt.Errorf("cannot reach brokers %s: %w", strings.Join(e.brokers, ","), err)
	}
	e.client = cl
	e.admin = kadm.NewClient(cl)
	e.admin.SetTimeoutMillis(int32(e.timeout / time.Millisecond))
	return cl, nil
}

// ping retries kgo's Ping until a broker answers or the timeout passes.
func ping(ctx context.Context, cl *kgo.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, min(timeout, 3*time.Second))
		err = cl.Ping(attempt)
		cancelAttempt()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
		if isRefused(err) { // nothing listens: no point waiting
			return err
		}
	}
}

func isRefused(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host"))
}

// adminClient connects and returns the admin client.
func (e *env) adminClient() (*kadm.Client, error) {
	if _, err := e.connect(); err != nil {
		return nil, err
	}
	return e.admin, nil
}

// answerMargin is how long past --timeout an administrative step waits for the answer:
// requests carry --timeout as their own timeout (CreateTopics, DeleteTopics), and a
// broker that reaches it answers REQUEST_TIMED_OUT with what it did, which is worth
// waiting for rather than giving up at the same moment.
const answerMargin = 5 * time.Second

// reqCtx is a context bounded by --timeout (and answerMargin) for one administrative step.
func (e *env) reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.ctx, e.timeout+answerMargin)
}

func (e *env) close() {
	if e.client != nil {
		e.client.Close()
	}
}

func (e *env) json() bool { return e.format == "json" }
