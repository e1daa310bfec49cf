package main

// The project's own implementation of pulumi-docker's native Image resource, for what the program
// uses of it: a build on the provider's Docker host (context, dockerfile, build args, platform)
// tagged imageName, never pushed (skipPush). As pulumi-docker's Diff: any change is an update,
// never a replacement; a change to a file of the build context changes `contextHash` and so
// rebuilds under the same name.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"github.com/moby/go-archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

const imageToken = "docker:index/image:Image"

func tokenOf(s string) tokens.Type { return tokens.Type(s) }

func lowerFirst(s string) string { return strings.ToLower(s[:1]) + s[1:] }

type imageProvider struct {
	host string
}

var opts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, SkipNulls: true}

func (p *imageProvider) configure(req *pulumirpc.ConfigureRequest) {
	if host, ok := req.GetVariables()["docker:config:host"]; ok {
		p.host = host
	}
	if args, err := plugin.UnmarshalProperties(req.GetArgs(), opts); err == nil {
		if host, ok := args["host"]; ok && host.IsString() {
			p.host = host.StringValue()
		}
	}
}

func buildInputs(inputs resource.PropertyMap) (contextDir, dockerfile, platform string, args map[string]*string) {
	args = map[string]*string{}
	b, ok := inputs["build"]
	if !ok || !b.IsObject() {
		return
	}
	obj := b.ObjectValue()
	get := func(k string) string {
		if v, ok := obj[resource.PropertyKey(k)]; ok && v.IsString() {
			return v.StringValue()
		}
		return ""
	}
	contextDir, dockerfile, platform = get("context"), get("dockerfile"), get("platform")
	if a, ok := obj["args"]; ok && a.IsObject() {
		for k, v := range a.ObjectValue() {
			if v.IsString() {
				value := v.StringValue()
				args[string(k)] = &value
			}
		}
	}
	return
}

// contextHash is a digest of every file of the build context (names and contents) and of the
// Dockerfile: what a rebuild would see.
func contextHash(contextDir, dockerfile string) (string, error) {
	h := sha256.New()
	var files []string
	err := filepath.WalkDir(contextDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "__pycache__" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if !d.IsDir() && !strings.HasSuffix(path, ".pyc") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("reading the build context %s: %w", contextDir, err)
	}
	if dockerfile != "" {
		files = append(files, dockerfile)
	}
	sort.Strings(files)
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00", path)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (p *imageProvider) check(req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	news, err := plugin.UnmarshalProperties(req.GetNews(), opts)
	if err != nil {
		return nil, err
	}
	contextDir, dockerfile, _, _ := buildInputs(news)
	if contextDir == "" || !news["imageName"].IsString() {
		return &pulumirpc.CheckResponse{Failures: []*pulumirpc.CheckFailure{{
			Property: "build", Reason: "this Image needs build.context and imageName (known strings)",
		}}}, nil
	}
	digest, err := contextHash(contextDir, dockerfile)
	if err != nil {
		return nil, err
	}
	news["contextHash"] = resource.NewProperty(digest)
	inputs, err := plugin.MarshalProperties(news, opts)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: inputs}, nil
}

func (p *imageProvider) diff(req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	olds, err := plugin.UnmarshalProperties(req.GetOldInputs(), opts)
	if err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), opts)
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}
	if d := olds.Diff(news); d != nil {
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
		for _, k := range d.ChangedKeys() {
			resp.Diffs = append(resp.Diffs, string(k))
		}
		sort.Strings(resp.Diffs)
	}
	return resp, nil
}

func outputsOf(inputs resource.PropertyMap) resource.PropertyMap {
	out := inputs.Copy()
	contextDir, dockerfile, platform, _ := buildInputs(inputs)
	out["baseImageName"] = inputs["imageName"]
	out["context"] = resource.NewProperty(contextDir)
	out["dockerfile"] = resource.NewProperty(dockerfile)
	out["platform"] = resource.NewProperty(platform)
	out["registryServer"] = resource.NewProperty("")
	out["repoDigest"] = resource.NewProperty("")
	return out
}

// build runs the build on the Docker host through its API, streaming the build's output to the
// provider's log, and fails with the build's own error message.
func (p *imageProvider) build(ctx context.Context, inputs resource.PropertyMap) (string, error) {
	contextDir, dockerfile, platform, args := buildInputs(inputs)
	name := inputs["imageName"].StringValue()
	cli, err := client.NewClientWithOpts(client.WithHost(p.host), client.WithAPIVersionNegotiation())
	if err != nil {
		return "", fmt.Errorf("the Docker host %q: %w", p.host, err)
	}
	defer cli.Close()
	rel, err := filepath.Rel(contextDir, dockerfile)
	if err != nil || dockerfile == "" {
		rel = "Dockerfile"
	}
	tar, err := archive.TarWithOptions(contextDir, &archive.TarOptions{})
	if err != nil {
		return "", err
	}
	defer tar.Close()
	resp, err := cli.ImageBuild(ctx, tar, build.ImageBuildOptions{
		Tags: []string{name}, Dockerfile: rel, BuildArgs: args, Platform: platform, Remove: true,
	})
	if err != nil {
		return "", fmt.Errorf("building %s: %w", name, err)
	}
	defer resp.Body.Close()
	decoder := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := decoder.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("building %s: %w", name, err)
		}
		if msg.Error != "" {
			return "", fmt.Errorf("building %s: %s", name, msg.Error)
		}
		if msg.Stream != "" {
			fmt.Fprint(os.Stderr, msg.Stream)
		}
	}
	return name, nil
}

func (p *imageProvider) create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	inputs, err := plugin.UnmarshalProperties(req.GetProperties(), opts)
	if err != nil {
		return nil, err
	}
	id := ""
	if !req.Preview {
		if id, err = p.build(ctx, inputs); err != nil {
			return nil, err
		}
	}
	props, err := plugin.MarshalProperties(outputsOf(inputs), opts)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

func (p *imageProvider) update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	inputs, err := plugin.UnmarshalProperties(req.GetNews(), opts)
	if err != nil {
		return nil, err
	}
	if !req.Preview {
		if _, err := p.build(ctx, inputs); err != nil {
			return nil, err
		}
	}
	props, err := plugin.MarshalProperties(outputsOf(inputs), opts)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

var _ = structpb.NewStruct
