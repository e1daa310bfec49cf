// Go lets only a package under terraform-provider-docker's own module path import its
// internal/provider: this module takes that path (replaced locally by ../../go.mod) to hand the
// provider out.
module github.com/terraform-providers/terraform-provider-docker/shim

go 1.26
