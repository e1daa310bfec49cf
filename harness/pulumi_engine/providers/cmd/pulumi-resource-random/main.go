// The `random` provider plugin: terraform-provider-random bridged by pulumi-terraform-bridge, as
// pulumi-random bridges it, with the project's own main (pulumi-random's provider module is not
// served by the Go module proxy). Each resource gets the token the pinned Python SDK sends:
// random_password is random:index/randomPassword:RandomPassword, and so on.
package main

import (
	"context"
	"fmt"
	"strings"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	random "github.com/terraform-providers/terraform-provider-random/shim"
)

// Set at build time (-ldflags -X): the version of pulumi-random the SDK asks for.
var version = "4.21.4"

// token turns random_password into random:index/randomPassword:RandomPassword.
func token(tfName string) tokens.Type {
	name := ""
	for _, part := range strings.Split(tfName, "_") {
		name += strings.ToUpper(part[:1]) + part[1:]
	}
	return tokens.Type("random:index/" + strings.ToLower(name[:1]) + name[1:] + ":" + name)
}

func main() {
	ctx := context.Background()
	p := pftfbridge.ShimProvider(random.NewProvider())
	resources := map[string]*tfbridge.ResourceInfo{}
	p.ResourcesMap().Range(func(key string, _ shim.Resource) bool {
		resources[key] = &tfbridge.ResourceInfo{Tok: token(key)}
		return true
	})
	info := tfbridge.ProviderInfo{
		P:            p,
		Name:         "random",
		Version:      version,
		MetadataInfo: tfbridge.NewProviderMetadata([]byte("{}")),
		Resources:    resources,
	}
	schema := fmt.Sprintf(`{"name":"random","version":%q}`, version)
	pftfbridge.Main(ctx, "random", info, pftfbridge.ProviderMetadata{PackageSchema: []byte(schema)})
}
