// Package shim hands out terraform-provider-docker's SDKv2 provider, which sits in an internal package.
package shim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider is the provider that serves docker_container, docker_image, docker_network and
// docker_volume (the provider's plugin-framework half serves none of the types the program uses).
func NewProvider(version string) *schema.Provider {
	return provider.New(version)()
}
