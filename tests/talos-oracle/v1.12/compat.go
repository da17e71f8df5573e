package main

import (
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
)

// Talos 1.12: `--with-kubespan` sets a v1alpha1 network option.
func kubeSpanOption() generate.Option {
	return generate.WithNetworkOptions(v1alpha1.WithKubeSpan())
}

func validateSecrets(bundle *secrets.Bundle, _ *config.VersionContract) error {
	return bundle.Validate()
}

func validateConfig(provider config.Provider, mode validation.RuntimeMode, opts ...validation.Option) ([]string, error) {
	return provider.Validate(mode, opts...)
}

// The cluster CNI: a v1alpha1 `cluster.network.cni` (name and manifest URLs).
func cniOption(name string, urls []string) generate.Option {
	return generate.WithClusterCNIConfig(&v1alpha1.CNIConfig{CNIName: name, CNIUrls: urls})
}
