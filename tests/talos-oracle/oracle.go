// This Source Code Form is test tooling of talos-manager: a differential oracle that runs
// Talos's own machinery (github.com/siderolabs/talos/pkg/machinery, MPL-2.0) as a library.
// It is never shipped or run by the product; only the Rust differential test runs it.
//
// Input (stdin): a JSON array of requests. Output (stdout): a JSON array of responses, one per
// request, in order. Requests:
//
//	{"op":"gen", "gen":{...}}          // talosctl gen config --with-secrets … -o - (one type)
//	{"op":"patch", "config":"…", "patches":["…"]}  // talosctl machineconfig patch
//	{"op":"validate", "config":"…", "mode":"metal", "strict":true} // talosctl validate
//	{"op":"descriptors"}  // v1.14 only: the Talos API's protobuf descriptors (descriptors.go)
//
// Responses: {"output":"…"} or {"error":"…"}; validate answers {"valid":bool,"errors":[…],
// "warnings":[…]} ("errors" holds the load error when the config does not even load).

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/bundle"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
)

type genRequest struct {
	ClusterName          string            `json:"cluster_name"`
	Endpoint             string            `json:"endpoint"`
	KubernetesVersion    string            `json:"kubernetes_version"`
	TalosVersion         string            `json:"talos_version"`
	Secrets              string            `json:"secrets"`
	MachineType          string            `json:"machine_type"`
	InstallDisk          string            `json:"install_disk"`
	InstallImage         string            `json:"install_image"`
	KubeSpan             bool              `json:"kubespan"`
	ClusterDiscovery     bool              `json:"cluster_discovery"`
	AdditionalSANs       []string          `json:"additional_sans"`
	DNSDomain            string            `json:"dns_domain"`
	RegistryMirrors      [][2]string       `json:"registry_mirrors"`
	AllowSchedulingOnCPs bool              `json:"allow_scheduling_on_control_planes"`
	ExtraKernelArgs      []string          `json:"extra_kernel_args"`
	LocalAPIServerPort   int               `json:"local_api_server_port"`
	Sysctls              map[string]string `json:"sysctls"`
	CNIName              string            `json:"cni_name"`
	CNIUrls              []string          `json:"cni_urls"`
	Patches              []string          `json:"patches"`
	PatchesControlPlane  []string          `json:"patches_control_plane"`
	PatchesWorker        []string          `json:"patches_worker"`
}

type request struct {
	Op      string      `json:"op"`
	Gen     *genRequest `json:"gen"`
	Config  string      `json:"config"`
	Patches []string    `json:"patches"`
	Mode    string      `json:"mode"`
	Strict  bool        `json:"strict"`
}

type response struct {
	Output   *string  `json:"output,omitempty"`
	Error    *string  `json:"error,omitempty"`
	Valid    *bool    `json:"valid,omitempty"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// extraOps are the requests only some releases' oracles answer, registered by a file of that
// release's directory (v1.14/descriptors.go: "descriptors").
var extraOps = map[string]func(request) response{}

// mode is the runtime mode of `talosctl validate -m` (the real type is internal to Talos).
type mode struct{ name string }

func (m mode) String() string        { return m.name }
func (m mode) RequiresInstall() bool { return m.name == "metal" }
func (m mode) InContainer() bool     { return m.name == "container" }

var _ validation.RuntimeMode = mode{}

func failed(err error) response {
	text := err.Error()

	return response{Error: &text}
}

func ok(out []byte) response {
	text := string(out)

	return response{Output: &text}
}

// gen does what `talosctl gen config --with-secrets FILE --talos-version V --output-types T
// --with-docs=false --with-examples=false -o -` does (talosctl's GenerateConfigBundle).
func gen(in *genRequest) response {
	var opts []generate.Option

	for _, m := range in.RegistryMirrors {
		opts = append(opts, generate.WithRegistryMirror(m[0], m[1]))
	}

	contract, err := config.ParseContractFromVersion(in.TalosVersion)
	if err != nil {
		return failed(fmt.Errorf("invalid talos-version: %w", err))
	}

	opts = append(opts, generate.WithVersionContract(contract))

	if in.KubeSpan {
		opts = append(opts, kubeSpanOption())
	}

	bundleSecrets, err := loadSecrets(in.Secrets)
	if err != nil {
		return failed(fmt.Errorf("failed to load secrets bundle: %w", err))
	}

	if err = validateSecrets(bundleSecrets, contract); err != nil {
		return failed(fmt.Errorf("failed to validate secrets bundle: %w", err))
	}

	opts = append(opts, generate.WithSecretsBundle(bundleSecrets))

	if in.AllowSchedulingOnCPs {
		opts = append(opts, generate.WithAllowSchedulingOnControlPlanes(true))
	}

	if len(in.ExtraKernelArgs) > 0 {
		opts = append(opts, generate.WithInstallExtraKernelArgs(in.ExtraKernelArgs))
	}

	if in.LocalAPIServerPort != 0 {
		opts = append(opts, generate.WithLocalAPIServerPort(in.LocalAPIServerPort))
	}

	if len(in.Sysctls) > 0 {
		opts = append(opts, generate.WithSysctls(in.Sysctls))
	}

	if in.CNIName != "" {
		opts = append(opts, cniOption(in.CNIName, in.CNIUrls))
	}

	dnsDomain := in.DNSDomain
	if dnsDomain == "" {
		dnsDomain = "cluster.local"
	}

	opts = append(opts,
		generate.WithInstallDisk(in.InstallDisk),
		generate.WithInstallImage(in.InstallImage),
		generate.WithAdditionalSubjectAltNames(in.AdditionalSANs),
		generate.WithDNSDomain(dnsDomain),
		generate.WithClusterDiscovery(in.ClusterDiscovery),
	)

	bundleOpts := []bundle.Option{
		bundle.WithInputOptions(&bundle.InputOptions{
			ClusterName: in.ClusterName,
			Endpoint:    in.Endpoint,
			KubeVersion: strings.TrimPrefix(in.KubernetesVersion, "v"),
			GenOptions:  opts,
		}),
	}

	for _, group := range []struct {
		texts []string
		opt   func([]configpatcher.Patch) bundle.Option
	}{
		{in.Patches, bundle.WithPatch},
		{in.PatchesControlPlane, bundle.WithPatchControlPlane},
		{in.PatchesWorker, bundle.WithPatchWorker},
	} {
		patches, err := configpatcher.LoadPatches(group.texts)
		if err != nil {
			return failed(fmt.Errorf("error parsing config JSON patch: %w", err))
		}

		bundleOpts = append(bundleOpts, group.opt(patches))
	}

	configBundle, err := bundle.NewBundle(bundleOpts...)
	if err != nil {
		return failed(fmt.Errorf("failed to generate config bundle: %w", err))
	}

	machineType := machine.TypeWorker
	if in.MachineType == "controlplane" {
		machineType = machine.TypeControlPlane
	}

	out, err := configBundle.Serialize(encoder.CommentsDisabled, machineType)
	if err != nil {
		return failed(err)
	}

	return ok(out)
}

// patch does what `talosctl machineconfig patch FILE --patch … -o FILE` does.
func patch(cfg string, texts []string) response {
	patches, err := configpatcher.LoadPatches(texts)
	if err != nil {
		return failed(err)
	}

	patched, err := configpatcher.Apply(configpatcher.WithBytes([]byte(cfg)), patches)
	if err != nil {
		return failed(err)
	}

	out, err := patched.Bytes()
	if err != nil {
		return failed(err)
	}

	return ok(out)
}

// loadSecrets reads a bundle as `--with-secrets FILE` does (through a temporary file).
func loadSecrets(text string) (*secrets.Bundle, error) {
	f, err := os.CreateTemp("", "talos-oracle-secrets-*.yaml")
	if err != nil {
		return nil, err
	}

	defer os.Remove(f.Name()) //nolint:errcheck

	if _, err = f.WriteString(text); err != nil {
		f.Close() //nolint:errcheck

		return nil, err
	}

	if err = f.Close(); err != nil {
		return nil, err
	}

	return secrets.LoadBundle(f.Name())
}

// flatten lists the leaves of a (possibly wrapped) multierror, each behind the text that
// wraps it (`invalid machine node labels: name "x y" is invalid`). The container's
// `v1alpha1.Config: ` prefix of the main document is dropped.
func flatten(err error) []string {
	return flattenPrefixed(err, "")
}

func flattenPrefixed(err error, prefix string) []string {
	if err == nil {
		return nil
	}

	var merr *multierror.Error
	if errors.As(err, &merr) {
		wrapper := strings.TrimSuffix(err.Error(), merr.Error())
		if wrapper == err.Error() {
			wrapper = ""
		}

		wrapper = strings.TrimPrefix(wrapper, "v1alpha1.Config: ")

		var out []string
		for _, e := range merr.Errors {
			out = append(out, flattenPrefixed(e, prefix+wrapper)...)
		}

		return out
	}

	return []string{prefix + err.Error()}
}

// validate does what `talosctl validate -m MODE [--strict]` does.
func validate(cfg, modeName string, strict bool) response {
	provider, err := configloader.NewFromBytes([]byte(cfg))
	if err != nil {
		valid := false

		return response{Valid: &valid, Errors: []string{err.Error()}}
	}

	opts := []validation.Option{validation.WithLocal()}
	if strict {
		opts = append(opts, validation.WithStrict())
	}

	warnings, err := validateConfig(provider, mode{modeName}, opts...)
	valid := err == nil
	errs := flatten(err)
	sort.Strings(warnings)

	return response{Valid: &valid, Errors: errs, Warnings: warnings}
}

func main() {
	var requests []request
	if err := json.NewDecoder(os.Stdin).Decode(&requests); err != nil {
		fmt.Fprintf(os.Stderr, "talos-oracle: bad request: %v\n", err)
		os.Exit(2)
	}

	responses := make([]response, 0, len(requests))

	for _, req := range requests {
		var resp response

		func() {
			defer func() {
				if r := recover(); r != nil {
					text := fmt.Sprintf("panic: %v", r)
					resp = response{Error: &text}
				}
			}()

			switch req.Op {
			case "gen":
				resp = gen(req.Gen)
			case "patch":
				resp = patch(req.Config, req.Patches)
			case "validate":
				resp = validate(req.Config, req.Mode, req.Strict)
			default:
				if op, ok := extraOps[req.Op]; ok {
					resp = op(req)
				} else {
					resp = failed(fmt.Errorf("unknown op %q", req.Op))
				}
			}
		}()

		responses = append(responses, resp)
	}

	if err := json.NewEncoder(os.Stdout).Encode(responses); err != nil {
		fmt.Fprintf(os.Stderr, "talos-oracle: %v\n", err)
		os.Exit(2)
	}
}
