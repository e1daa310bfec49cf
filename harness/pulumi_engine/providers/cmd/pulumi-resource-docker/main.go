// The `docker` provider plugin: terraform-provider-docker bridged by pulumi-terraform-bridge, as
// pulumi-docker bridges it, with the project's own main (pulumi-docker's provider module is not
// served by the Go module proxy, and its schema-embed.json is not in any module). The resource
// tokens and the two field names that differ from the bridge's defaults are the ones the pinned
// Python SDK sends; docker_container keeps pulumi-docker's DeleteBeforeReplace default.
//
// pulumi-docker's Image (docker:index/image:Image) is no Terraform resource but native Go in
// pulumi-docker; image.go is this project's own implementation of what the program uses of it.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/terraform-providers/terraform-provider-docker/shim"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Set at build time (-ldflags -X): the version of pulumi-docker the SDK asks for.
var version = "5.2.0"

func info() tfbridge.ProviderInfo {
	tok := func(name string) string { return "docker:index/" + lowerFirst(name) + ":" + name }
	return tfbridge.ProviderInfo{
		P:            shimv2.NewProvider(shim.NewProvider(version)),
		Name:         "docker",
		Version:      version,
		MetadataInfo: tfbridge.NewProviderMetadata([]byte("{}")),
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_container": {
				Tok:                 tokenOf(tok("Container")),
				DeleteBeforeReplace: true,
				Fields: map[string]*tfbridge.SchemaInfo{
					"command":           {Name: "command"},
					"networks_advanced": {Name: "networksAdvanced"},
				},
			},
			"docker_image": {
				Tok:    tokenOf(tok("RemoteImage")),
				Fields: map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}},
			},
			"docker_network": {Tok: tokenOf(tok("Network"))},
			"docker_volume":  {Tok: tokenOf(tok("Volume"))},
		},
	}
}

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "-version" || os.Args[1] == "--version") {
		fmt.Println(version)
		return
	}
	prov := info()
	if err := provider.Main("docker", func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		schema := []byte(`{"name":"docker","version":"` + version + `"}`)
		bridged := tfbridge.NewProvider(context.Background(), host, "docker", version, prov.P, prov, schema)
		return &withImage{ResourceProviderServer: bridged, image: &imageProvider{}}, nil
	}); err != nil {
		panic(err)
	}
}

// withImage sends docker:index/image:Image to the native implementation and everything else to
// the bridged provider; it sees the provider's configuration to learn the Docker host.
type withImage struct {
	pulumirpc.ResourceProviderServer
	image *imageProvider
}

func isImage(urn string) bool {
	return string(resource.URN(urn).Type()) == imageToken
}

func (p *withImage) Configure(ctx context.Context, req *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	p.image.configure(req)
	return p.ResourceProviderServer.Configure(ctx, req)
}

func (p *withImage) Check(ctx context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if isImage(req.Urn) {
		return p.image.check(req)
	}
	return p.ResourceProviderServer.Check(ctx, req)
}

func (p *withImage) Diff(ctx context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	if isImage(req.Urn) {
		return p.image.diff(req)
	}
	return p.ResourceProviderServer.Diff(ctx, req)
}

func (p *withImage) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if isImage(req.Urn) {
		return p.image.create(ctx, req)
	}
	return p.ResourceProviderServer.Create(ctx, req)
}

func (p *withImage) Read(ctx context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	if isImage(req.Urn) {
		return &pulumirpc.ReadResponse{Id: req.Id, Properties: req.Properties, Inputs: req.Inputs}, nil
	}
	return p.ResourceProviderServer.Read(ctx, req)
}

func (p *withImage) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	if isImage(req.Urn) {
		return p.image.update(ctx, req)
	}
	return p.ResourceProviderServer.Update(ctx, req)
}

func (p *withImage) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if isImage(req.Urn) {
		// As pulumi-docker's Image: deleting the resource leaves the image in the engine.
		return &emptypb.Empty{}, nil
	}
	return p.ResourceProviderServer.Delete(ctx, req)
}
