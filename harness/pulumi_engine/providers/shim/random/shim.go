// Package shim hands out terraform-provider-random's provider, which sits in an internal package.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	random "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider is terraform-provider-random's plugin-framework provider.
func NewProvider() provider.Provider {
	return random.New()
}
