package main

import (
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
)

// Talos 1.14: `--with-kubespan` writes a KubeSpanConfig document.
func kubeSpanOption() generate.Option {
	return generate.WithKubeSpanEnabled(true)
}

// Talos 1.14 validates a secrets bundle against the version contract.
func validateSecrets(bundle *secrets.Bundle, contract *config.VersionContract) error {
	return bundle.Validate(contract)
}

// talosctl 1.14's validate command validates as a client (outside of Talos).
func validateConfig(provider config.Provider, mode validation.RuntimeMode, opts ...validation.Option) ([]string, error) {
	return provider.ValidateAsClient(mode, opts...)
}

// Talos 1.14 has only a custom CNI manifest URL (the CNI is a KubeFlannelCNIConfig document or
// a custom one); talosctl's `--custom-cni-url` (there is no CNI name option any more).
func cniOption(_ string, urls []string) generate.Option {
	url := ""
	if len(urls) > 0 {
		url = urls[0]
	}

	return generate.WithCustomCNIUrl(url)
}
