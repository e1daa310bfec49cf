// The project's own Python language host for the Pulumi engine.
//
// Pulumi's own host (sdk/python/cmd/pulumi-language-python) is a Go module of its own that the Go
// module proxy does not serve at the pinned release, so this host does the part a `pulumi
// preview|up` of this project needs: it runs the program with Pulumi's own executor script
// (`pulumi-language-python-exec`, shipped in the sdk/v3 module and installed beside this binary),
// in the project's virtualenv, and tells the engine which provider plugins the installed SDKs need
// (their `pulumi-plugin.json`). It installs nothing: `make venv` does.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	sdk "github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Set at build time (-ldflags -X main.version=...): the CLI's version, as Pulumi's own host reports.
var version = "dev"

// The exit code with which the executor says it has already shown the user why it failed.
const exitedAfterMessage = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	executor      string
	engineAddress string
}

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.String("tracing", "", "ignored: this host emits no traces")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	self, err := os.Executable()
	if err != nil {
		cmdutil.Exit(err)
	}
	executor := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")
	if _, err := os.Stat(executor); err != nil {
		cmdutil.Exit(fmt.Errorf("the executor must be installed beside the language host: %w", err))
	}
	h := &host{executor: executor}
	if flag.NArg() > 0 {
		h.engineAddress = flag.Arg(0)
	}
	cancel := make(chan bool)
	if h.engineAddress != "" {
		ctx, stop := context.WithCancel(context.Background())
		go func() { <-ctx.Done(); close(cancel) }()
		if err := rpcutil.Healthcheck(ctx, h.engineAddress, 5*time.Minute, stop); err != nil {
			cmdutil.Exit(err)
		}
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(err)
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(err)
	}
}

func (h *host) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.EngineAddress
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// options reads the project's `runtime.options` (Pulumi.yaml): the virtualenv and the toolchain.
func options(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{Root: info.RootDirectory, ProgramDir: info.ProgramDirectory, Toolchain: toolchain.Pip}
	raw := info.GetOptions().AsMap()
	if venv, ok := raw["virtualenv"].(string); ok {
		opts.Virtualenv = venv
	}
	if tc, ok := raw["toolchain"].(string); ok && tc != "pip" {
		return opts, fmt.Errorf("runtime.options.toolchain is %q: this host runs only the pip toolchain", tc)
	}
	return opts, nil
}

func (h *host) python(ctx context.Context, info *pulumirpc.ProgramInfo, args ...string) (*exec.Cmd, error) {
	opts, err := options(info)
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	return tc.Command(ctx, args...)
}

// pluginJSON is what a provider SDK ships as pulumi-plugin.json.
type pluginJSON struct {
	Resource bool   `json:"resource"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
}

// The installed packages' pulumi-plugin.json files, one JSON object a line.
const listPlugins = `
import importlib.metadata, json
for dist in importlib.metadata.distributions():
    for file in dist.files or []:
        if file.name == "pulumi-plugin.json":
            print(json.dumps(json.loads(file.read_text())))
`

func (h *host) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	cmd, err := h.python(ctx, req.Info, "-c", listPlugins)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the installed provider SDKs: %w", err)
	}
	packages := []*pulumirpc.PackageDependency{}
	decoder := json.NewDecoder(bytes.NewReader(out))
	for decoder.More() {
		var p pluginJSON
		if err := decoder.Decode(&p); err != nil {
			return nil, fmt.Errorf("a pulumi-plugin.json: %w", err)
		}
		if !p.Resource || p.Name == "" {
			continue
		}
		packages = append(packages, &pulumirpc.PackageDependency{
			Kind: "resource", Name: p.Name, Version: "v" + trimV(p.Version), Server: p.Server,
		})
	}
	sort.Slice(packages, func(i, j int) bool { return packages[i].Name < packages[j].Name })
	return &pulumirpc.GetRequiredPackagesResponse{Packages: packages}, nil
}

func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	// `make venv` installs the pinned requirements; a run installs nothing.
	_, err := h.python(server.Context(), req.Info, "--version")
	return err
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	args := []string{h.executor}
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.engineAddress)
	flagArg("project", req.GetProject())
	flagArg("root_directory", req.GetInfo().GetRootDirectory())
	flagArg("stack", req.GetStack())
	flagArg("pwd", req.GetPwd())
	flagArg("dry_run", strconv.FormatBool(req.GetDryRun()))
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	flagArg("organization", req.GetOrganization())
	args = append(args, req.GetInfo().GetEntryPoint())
	args = append(args, req.GetArgs()...)

	cmd, err := h.python(ctx, req.Info, args...)
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeysJSON))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.ExitStatus() == exitedAfterMessage {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d", exitErr.ExitCode())}, nil
		}
		return nil, fmt.Errorf("could not run the Python executor: %w", err)
	}
	return &pulumirpc.RunResponse{}, nil
}

func (h *host) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "GetRequiredPackages answers this")
}

func trimV(v string) string {
	if len(v) > 0 && v[0] == 'v' {
		return v[1:]
	}
	return v
}

// RunPlugin runs a Python policy pack (`pulumi preview --policy-pack DIR`): `python -u -m
// pulumi.policy ARGS DIR` in the pack's own virtualenv and directory. The pack's Python library
// reads the stack from environment variables, so the SDK's PolicyProxy answers the engine's stack
// configuration first and hands the connection over once the pack serves (as Pulumi's host does).
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	if req.Kind != "analyzer" {
		return status.Errorf(codes.Unimplemented, "this host runs policy packs only, not a %s plugin", req.Kind)
	}
	ctx := server.Context()
	opts, err := options(req.Info)
	if err != nil {
		return err
	}
	if opts.Virtualenv == "" {
		opts.Virtualenv = "venv"
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	args := append([]string{"-u", "-m", "pulumi.policy"}, req.Args...)
	cmd, err := tc.Command(ctx, append(args, req.Info.ProgramDirectory)...)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	proxy, stdout, err := sdk.NewPolicyProxy(ctx, stdout)
	if err != nil {
		return fmt.Errorf("could not start the policy pack proxy: %w", err)
	}
	config, err := proxy.AwaitConfiguration(ctx)
	if err != nil {
		return fmt.Errorf("could not get the stack's configuration: %w", err)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	if config != nil {
		setenv := func(k, v string) {
			if v != "" {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
		}
		setenv("PULUMI_ORGANIZATION", config.Organization)
		setenv("PULUMI_PROJECT", config.Project)
		setenv("PULUMI_STACK", config.Stack)
		setenv("PULUMI_DRY_RUN", strconv.FormatBool(config.DryRun))
		if config.Config != nil {
			configJSON, err := json.Marshal(config.Config)
			if err != nil {
				return err
			}
			setenv("PULUMI_CONFIG", string(configJSON))
		}
	}
	cmd.Env = append(cmd.Env, req.Env...)
	cmd.Dir = req.Info.ProgramDirectory
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := proxy.Attach(ctx, cmd); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return server.Send(&pulumirpc.RunPluginResponse{
				Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(exitErr.ExitCode())},
			})
		}
		return fmt.Errorf("the policy pack: %w", err)
	}
	return closer.Close()
}
