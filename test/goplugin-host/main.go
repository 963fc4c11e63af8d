// goplugin-host launches a Conduit connector plugin binary exactly the way
// Conduit v0.19.0 does (conduit-connector-protocol v0.9.5
// pconnector/client/client.go + hashicorp/go-plugin v1.8.0), performs a
// scripted sequence of unary gRPC calls on the dispensed connection and
// reports what happened as one JSON object on stdout.
//
// Usage:
//
//	goplugin-host -plugin PATH [-env KEY=VAL ...] [-dispense specifier|source|destination]
//	              [-no-script] [-call-timeout 30s] [-start-timeout 0] [-hold] < script.json
//
// Script (stdin, unless -no-script):
//
//	{"calls":[{"method":"/connector.v2.SpecifierPlugin/Specify","request_b64":""}]}
//
// Requests and responses are raw protobuf bytes (base64, standard alphabet with
// padding); the Go side needs no generated stubs.
//
// Only test tooling: it is not part of the connector.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// handshakeConfig mirrors conduit-connector-protocol@v0.9.5
// pconnector/pconnector.go HandshakeConfig. Upstream leaves ProtocolVersion
// unset (0); with VersionedPlugins and no legacy Plugins set, go-plugin ignores
// it (client.go Start: it is only used as the key for config.Plugins).
var handshakeConfig = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "CONDUIT_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "204e8e812c3a1bb73b838928c575b42a105dd2e9aa449be481bc4590486df53f",
}

// connPlugin is the client half of a go-plugin GRPCPlugin: like Conduit's
// grpcPlugin[T] it only wraps the *grpc.ClientConn (Conduit wraps it in a
// generated client; we keep the bare connection).
type connPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

var (
	_ plugin.Plugin     = (*connPlugin)(nil)
	_ plugin.GRPCPlugin = (*connPlugin)(nil)
)

func (p *connPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return cc, nil
}

func (p *connPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("goplugin-host only implements gRPC clients")
}

func newPluginSet() plugin.PluginSet {
	return plugin.PluginSet{
		"specifier":   &connPlugin{},
		"source":      &connPlugin{},
		"destination": &connPlugin{},
	}
}

// rawCodec passes []byte through unchanged.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case *[]byte:
		return *b, nil
	default:
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, ",") }
func (e *envFlag) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("-env wants KEY=VAL, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

type scriptCall struct {
	Method     string `json:"method"`
	RequestB64 string `json:"request_b64"`
	// TimeoutMs overrides -call-timeout for this call (0 = use the default).
	TimeoutMs int64 `json:"timeout_ms,omitempty"`
}

type script struct {
	Calls []scriptCall `json:"calls"`
}

type callResult struct {
	Method      string  `json:"method"`
	ResponseB64 string  `json:"response_b64"`
	Error       string  `json:"error"`
	Code        string  `json:"code"`
	Ms          float64 `json:"ms"`
}

type result struct {
	NegotiatedVersion int              `json:"negotiated_version"`
	Protocol          string           `json:"protocol"`
	Dispensed         string           `json:"dispensed"`
	PluginPid         int              `json:"plugin_pid"`
	Calls             []callResult     `json:"calls"`
	StartMs           float64          `json:"start_ms"`
	ConnectMs         float64          `json:"connect_ms"`
	KillMs            float64          `json:"kill_ms"`
	Exited            bool             `json:"exited"`
	ForceKilled       bool             `json:"force_killed"`
	Error             string           `json:"error"`
	HostLog           []map[string]any `json:"host_log"`
	PluginStderr      string           `json:"plugin_stderr"`
	StdioStdout       string           `json:"stdio_stdout"`
	StdioStderr       string           `json:"stdio_stderr"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000.0 }

func main() {
	os.Exit(run())
}

func run() int {
	var (
		pluginPath   string
		envs         envFlag
		dispense     string
		noScript     bool
		callTimeout  time.Duration
		startTimeout time.Duration
		hold         bool
	)
	flag.StringVar(&pluginPath, "plugin", "", "path of the plugin binary (required)")
	flag.Var(&envs, "env", "KEY=VAL put into the plugin's cmd.Env before the host environment (repeatable)")
	flag.StringVar(&dispense, "dispense", "specifier", "plugin to dispense: specifier, source or destination")
	flag.BoolVar(&noScript, "no-script", false, "do not read a script: only start, dispense and kill")
	flag.DurationVar(&callTimeout, "call-timeout", 30*time.Second, "deadline of each scripted call (0 = none, like Conduit)")
	flag.DurationVar(&startTimeout, "start-timeout", 0, "go-plugin StartTimeout (0 = go-plugin default of 1m, like Conduit)")
	flag.BoolVar(&hold, "hold", false, "after the script, print {\"held\":true,\"plugin_pid\":N} and wait to be killed (host-death tests)")
	flag.Parse()

	if pluginPath == "" {
		fmt.Fprintln(os.Stderr, "goplugin-host: -plugin is required")
		flag.Usage()
		return 2
	}
	switch dispense {
	case "specifier", "source", "destination":
	default:
		fmt.Fprintf(os.Stderr, "goplugin-host: -dispense must be specifier, source or destination, got %q\n", dispense)
		return 2
	}

	var sc script
	if !noScript {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "goplugin-host: reading script from stdin: %v\n", err)
			return 2
		}
		if len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, &sc); err != nil {
				fmt.Fprintf(os.Stderr, "goplugin-host: parsing script: %v\n", err)
				return 2
			}
		}
	}
	requests := make([][]byte, len(sc.Calls))
	for i, c := range sc.Calls {
		b, err := base64.StdEncoding.DecodeString(c.RequestB64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "goplugin-host: call %d: bad request_b64: %v\n", i, err)
			return 2
		}
		requests[i] = b
	}

	hostLog := &lockedBuffer{}
	pluginStderr := &lockedBuffer{}
	stdioStdout := &lockedBuffer{}
	stdioStderr := &lockedBuffer{}

	logger := hclog.New(&hclog.LoggerOptions{
		Output:     hostLog,
		Level:      hclog.Trace,
		JSONFormat: true,
	})

	// As pconnector/client/client.go New(): exec.CommandContext with
	// context.Background(), cmd.Env = empty slice, then client.WithEnvVar
	// appends KEY=VAL entries in order. go-plugin appends os.Environ() and
	// its own variables in Start().
	cmd := exec.CommandContext(context.Background(), pluginPath)
	cmd.Env = make([]string, 0)
	cmd.Env = append(cmd.Env, envs...)

	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: handshakeConfig,
		VersionedPlugins: map[int]plugin.PluginSet{
			1: newPluginSet(),
			2: newPluginSet(),
		},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		// Conduit points these at its logger; we keep them to report them.
		SyncStdout: stdioStdout,
		SyncStderr: stdioStderr,
		// Conduit leaves Stderr nil (go-plugin: io.Discard). A copy of the raw
		// stderr lines changes nothing in go-plugin's behaviour.
		Stderr:       pluginStderr,
		Logger:       logger,
		StartTimeout: startTimeout,
	})

	res := result{Calls: []callResult{}, Dispensed: dispense}
	exitCode := 0

	t0 := time.Now()
	_, err := client.Start()
	res.StartMs = ms(time.Since(t0))
	if err != nil {
		res.Error = "start: " + err.Error()
		exitCode = 1
	}

	var conn *grpc.ClientConn
	if err == nil {
		if rc := client.ReattachConfig(); rc != nil {
			res.PluginPid = rc.Pid
		}
		res.NegotiatedVersion = client.NegotiatedVersion()
		res.Protocol = string(client.Protocol())

		t1 := time.Now()
		rpcClient, cerr := client.Client()
		res.ConnectMs = ms(time.Since(t1))
		if cerr != nil {
			res.Error = "client: " + cerr.Error()
			exitCode = 1
		} else {
			raw, derr := rpcClient.Dispense(dispense)
			if derr != nil {
				res.Error = "dispense: " + derr.Error()
				exitCode = 1
			} else if cc, ok := raw.(*grpc.ClientConn); ok {
				conn = cc
			} else {
				res.Error = fmt.Sprintf("dispense: unexpected type %T", raw)
				exitCode = 1
			}
		}
	}

	if conn != nil {
		for i, c := range sc.Calls {
			res.Calls = append(res.Calls, invoke(conn, c, requests[i], callTimeout))
		}
	}

	if hold {
		// Like a Conduit that dies mid-pipeline: the test kills this process (SIGKILL), so
		// go-plugin never gets to stop the plugin.
		fmt.Printf("{\"held\":true,\"plugin_pid\":%d}\n", res.PluginPid)
		select {}
	}

	tk := time.Now()
	client.Kill()
	res.KillMs = ms(time.Since(tk))
	res.Exited = client.Exited()

	res.HostLog = parseLog(hostLog.String())
	for _, entry := range res.HostLog {
		switch entry["@message"] {
		case "plugin failed to exit gracefully":
			res.ForceKilled = true
		case "plugin started":
			// go-plugin logs the pid even when the handshake fails later.
			if pid, ok := entry["pid"].(float64); ok && res.PluginPid == 0 {
				res.PluginPid = int(pid)
			}
		}
	}
	res.PluginStderr = pluginStderr.String()
	res.StdioStdout = stdioStdout.String()
	res.StdioStderr = stdioStderr.String()

	enc := json.NewEncoder(os.Stdout)
	if encErr := enc.Encode(res); encErr != nil {
		fmt.Fprintf(os.Stderr, "goplugin-host: writing result: %v\n", encErr)
		return 1
	}
	if exitCode != 0 {
		fmt.Fprintf(os.Stderr, "goplugin-host: %s\n", res.Error)
	}
	return exitCode
}

func invoke(conn *grpc.ClientConn, c scriptCall, req []byte, defTimeout time.Duration) callResult {
	ctx := context.Background()
	timeout := defTimeout
	if c.TimeoutMs > 0 {
		timeout = time.Duration(c.TimeoutMs) * time.Millisecond
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	var resp []byte
	t := time.Now()
	err := conn.Invoke(ctx, c.Method, req, &resp, grpc.ForceCodec(rawCodec{}))
	out := callResult{Method: c.Method, Ms: ms(time.Since(t))}
	st := status.Convert(err) // nil error -> OK
	out.Code = st.Code().String()
	if err != nil {
		out.Error = st.Message()
	} else {
		out.ResponseB64 = base64.StdEncoding.EncodeToString(resp)
	}
	return out
}

func parseLog(s string) []map[string]any {
	out := []map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			m = map[string]any{"raw": line}
		}
		out = append(out, m)
	}
	return out
}
