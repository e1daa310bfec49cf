// The `random` provider plugin: terraform-provider-random bridged by pulumi-terraform-bridge, as
// pulumi-random bridges it, with the project's own main (pulumi-random's provider module is not
// served by the Go module proxy). The token of each resource is the one the pinned Python SDK
// sends (random:index/randomPassword:RandomPassword for random_password, and so on).
package main

import (
	"context"
	"fmt"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/terraform-providers/terraform-provider-random/shim"
)

// Set at build time (-ldflags -X): the version of pulumi-random the SDK asks for.
var version = "4.21.4"

func main() {
	ctx := context.Background()
	info := tfbridge.ProviderInfo{
		P:            pftfbridge.ShimProvider(shim.NewProvider()),
		Name:         "random",
		Version:      version,
		MetadataInfo: tfbridge.NewProviderMetadata([]byte("{}")),
	}
	info.MustComputeTokens(tokens.SingleModule("random_", "index", tokens.MakeStandard("random")))
	schema := fmt.Sprintf(`{"name":"random","version":%q}`, version)
	pftfbridge.Main(ctx, "random", info, pftfbridge.ProviderMetadata{PackageSchema: []byte(schema)})
}
