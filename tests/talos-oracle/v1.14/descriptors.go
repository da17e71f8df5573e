// Test tooling of talos-manager (see ../README.md): the protobuf file descriptors of the Talos
// API that talos-manager's own .proto files (talos-api/proto/) declare a part of, as Talos's
// generated Go code registers them, for the Rust test that compares the two
// (talos-api/tests/talos_api/proto_equality.rs).

package main

import (
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	// Registering their descriptors is all these imports do.
	_ "github.com/cosi-project/runtime/api/v1alpha1"
	_ "github.com/siderolabs/talos/pkg/machinery/api/common"
	_ "github.com/siderolabs/talos/pkg/machinery/api/machine"
)

// descriptorPackages are the protobuf packages talos-manager's .proto files use.
var descriptorPackages = map[string]bool{
	"machine":       true,
	"common":        true,
	"cosi.resource": true,
	"google.rpc":    true,
}

func init() {
	extraOps["descriptors"] = descriptors
}

// descriptors answers {"output": a FileDescriptorSet as protojson with the .proto field names}
// holding every registered file of descriptorPackages, sorted by file name.
func descriptors(request) response {
	set := &descriptorpb.FileDescriptorSet{}

	protoregistry.GlobalFiles.RangeFiles(func(file protoreflect.FileDescriptor) bool {
		if descriptorPackages[string(file.Package())] {
			set.File = append(set.File, protodesc.ToFileDescriptorProto(file))
		}

		return true
	})

	sort.Slice(set.File, func(i, j int) bool { return set.File[i].GetName() < set.File[j].GetName() })

	out, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(set)
	if err != nil {
		return failed(err)
	}

	text := string(out)

	return response{Output: &text}
}
