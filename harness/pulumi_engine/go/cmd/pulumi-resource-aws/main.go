// A STAND-IN for the `aws` provider plugin, for the real Pulumi engine on a machine with no AWS.
//
// pulumi-aws cannot be built here (its provider patches HashiCorp's source), and no test may call
// AWS. This plugin answers, under the name and version the pinned SDK asks for (aws 7.51.1), every
// AWS resource type and invoke the program uses: it keeps the inputs as the state, adds the
// outputs the program reads (ids and ARNs derived from the resource's name, so every run gives
// the same), and replaces a resource exactly when an input that pulumi-aws marks ForceNew changes
// (harness/provider_behaviour.yaml, given at build time). It talks to nothing: AWS's own semantics
// stay tested on moto's server.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

var (
	// Set at build time (-ldflags -X): the version the SDK asks for, and per type the inputs whose
	// change replaces (JSON: {"aws:s3/bucket:Bucket": ["bucket", ...]}).
	version     = "7.51.1"
	replaceJSON = "{}"
)

// The account every ARN names: the mock engine's, so the offline plan and the engine agree.
const account = "123456789012"

type standIn struct {
	pulumirpc.UnimplementedResourceProviderServer
	replace map[string][]string
	region  string
}

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "-version" || os.Args[1] == "--version") {
		fmt.Println(version)
		return
	}
	s := &standIn{region: "eu-west-1"}
	if err := json.Unmarshal([]byte(replaceJSON), &s.replace); err != nil {
		panic(fmt.Sprintf("replaceJSON given at build time: %v", err))
	}
	if err := provider.Main("aws", func(*provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return s, nil
	}); err != nil {
		panic(err)
	}
}

var marshal = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true, SkipNulls: true}

func unmarshal(s *structpb.Struct) (resource.PropertyMap, error) {
	return plugin.UnmarshalProperties(s, marshal)
}

func pack(m resource.PropertyMap) (*structpb.Struct, error) {
	return plugin.MarshalProperties(m, marshal)
}

func (s *standIn) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (s *standIn) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	return &pulumirpc.GetSchemaResponse{Schema: fmt.Sprintf(
		`{"name":"aws","version":%q,"description":"audit-x's stand-in for pulumi-aws: no AWS behind it"}`, version)}, nil
}

func (s *standIn) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.News}, nil
}

func (s *standIn) DiffConfig(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return s.diff(req, nil)
}

func (s *standIn) Configure(_ context.Context, req *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	if args, err := unmarshal(req.GetArgs()); err == nil {
		if region, ok := args["region"]; ok && region.IsString() {
			s.region = region.StringValue()
		}
	}
	if region, ok := req.GetVariables()["aws:config:region"]; ok && region != "" {
		s.region = region
	}
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true, AcceptResources: true}, nil
}

func (s *standIn) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.News}, nil
}

func (s *standIn) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return s.diff(req, s.replace[string(resource.URN(req.Urn).Type())])
}

// diff compares the old inputs with the new ones, key by key; a changed key in replaceKeys replaces.
func (s *standIn) diff(req *pulumirpc.DiffRequest, replaceKeys []string) (*pulumirpc.DiffResponse, error) {
	olds, err := unmarshal(req.GetOldInputs())
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	forces := map[string]bool{}
	for _, key := range replaceKeys {
		forces[key] = true
	}
	keys := map[resource.PropertyKey]bool{}
	for k := range olds {
		keys[k] = true
	}
	for k := range news {
		keys[k] = true
	}
	resp := &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}
	detailed := map[string]*pulumirpc.PropertyDiff{}
	for k := range keys {
		if strings.HasPrefix(string(k), "__") {
			continue
		}
		oldValue, newValue := olds[k], news[k]
		if oldValue.DeepEquals(newValue) {
			continue
		}
		resp.Diffs = append(resp.Diffs, string(k))
		kind := pulumirpc.PropertyDiff_UPDATE
		if forces[string(k)] {
			kind = pulumirpc.PropertyDiff_UPDATE_REPLACE
			resp.Replaces = append(resp.Replaces, string(k))
		}
		detailed[string(k)] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
	}
	if len(resp.Diffs) > 0 {
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
		sort.Strings(resp.Diffs)
		sort.Strings(resp.Replaces)
		resp.DetailedDiff = detailed
		resp.HasDetailedDiff = true
	}
	return resp, nil
}

func digest(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(sum[:])
}

func str(m resource.PropertyMap, key string) string {
	v, ok := m[resource.PropertyKey(key)]
	for ok && v.IsSecret() {
		v = v.SecretValue().Element
	}
	if ok && v.IsString() {
		return v.StringValue()
	}
	return ""
}

// made computes the id and the outputs AWS would give a new resource of this type and name; in a
// preview, outputs that depend on unknown inputs are unknown.
func (s *standIn) made(urn resource.URN, inputs resource.PropertyMap) (string, resource.PropertyMap) {
	name := urn.Name()
	typ := string(urn.Type())
	module := strings.SplitN(strings.TrimPrefix(typ, "aws:"), "/", 2)[0]
	outputs := inputs.Copy()
	set := func(key, value string) { outputs[resource.PropertyKey(key)] = resource.NewProperty(value) }
	id := name + "-" + digest(typ, name)[:8]
	switch typ {
	case "aws:kms/key:Key":
		id = digest(name)[:32]
		set("keyId", id)
		set("arn", fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", s.region, account, id))
	case "aws:kms/alias:Alias":
		id = str(inputs, "name")
		set("arn", fmt.Sprintf("arn:aws:kms:%s:%s:%s", s.region, account, id))
	case "aws:s3/bucket:Bucket":
		id = str(inputs, "bucket")
		set("arn", "arn:aws:s3:::"+id)
		set("bucketDomainName", id+".s3.amazonaws.com")
		set("region", s.region)
	case "aws:secretsmanager/secret:Secret":
		id = fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-AbCdEf", s.region, account, str(inputs, "name"))
		set("arn", id)
	case "aws:secretsmanager/secretVersion:SecretVersion":
		version := digest(typ, name, str(inputs, "secretString"))[:32]
		id = str(inputs, "secretId") + "|" + version
		set("versionId", version)
		set("arn", str(inputs, "secretId"))
	case "aws:iam/user:User":
		id = str(inputs, "name")
		path := str(inputs, "path")
		if path == "" {
			path = "/"
		}
		set("arn", fmt.Sprintf("arn:aws:iam::%s:user%s%s", account, path, id))
		set("uniqueId", "AIDA"+strings.ToUpper(digest(name)[:17]))
	case "aws:iam/accessKey:AccessKey":
		id = "AKIA" + strings.ToUpper(digest(name)[:16])
		outputs["secret"] = resource.MakeSecret(resource.NewProperty("MOCKSECRET" + digest(name)[:24]))
		set("status", "Active")
	case "aws:iam/userPolicy:UserPolicy":
		id = str(inputs, "user") + ":" + str(inputs, "name")
	case "aws:sns/topic:Topic":
		id = fmt.Sprintf("arn:aws:sns:%s:%s:%s", s.region, account, str(inputs, "name"))
		set("arn", id)
	case "aws:sns/topicSubscription:TopicSubscription":
		id = str(inputs, "topic") + ":" + digest(name)[:8]
		set("arn", id)
	case "aws:cloudwatch/metricAlarm:MetricAlarm":
		id = str(inputs, "name")
		set("arn", fmt.Sprintf("arn:aws:cloudwatch:%s:%s:alarm:%s", s.region, account, id))
	}
	if _, ok := outputs["arn"]; !ok {
		set("arn", fmt.Sprintf("arn:aws:%s:%s:%s:%s", module, s.region, account, name))
	}
	if inputs.ContainsUnknowns() {
		for k, v := range outputs {
			if _, given := inputs[k]; !given && !v.IsComputed() {
				outputs[k] = resource.MakeComputed(resource.NewProperty(""))
			}
		}
	}
	return id, outputs
}

func (s *standIn) Create(_ context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	inputs, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	id, outputs := s.made(resource.URN(req.Urn), inputs)
	props, err := pack(outputs)
	if err != nil {
		return nil, err
	}
	if req.Preview {
		id = ""
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

func (s *standIn) Update(_ context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	inputs, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	_, outputs := s.made(resource.URN(req.Urn), inputs)
	props, err := pack(outputs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

// Read gives back what the state holds: nothing changes behind the stand-in's back.
func (s *standIn) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	return &pulumirpc.ReadResponse{Id: req.Id, Properties: req.Properties, Inputs: req.Inputs}, nil
}

func (s *standIn) Delete(context.Context, *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (s *standIn) Invoke(_ context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	var result resource.PropertyMap
	switch req.Tok {
	case "aws:index/getCallerIdentity:getCallerIdentity":
		result = resource.NewPropertyMapFromMap(map[string]any{
			"accountId": account, "arn": fmt.Sprintf("arn:aws:iam::%s:user/deploy", account),
			"userId": "AIDA", "id": account,
		})
	case "aws:index/getRegion:getRegion":
		result = resource.NewPropertyMapFromMap(map[string]any{"name": s.region, "region": s.region, "id": s.region})
	case "aws:index/getPartition:getPartition":
		result = resource.NewPropertyMapFromMap(map[string]any{"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"})
	default:
		return nil, status.Errorf(codes.Unimplemented, "the aws stand-in does not answer %s", req.Tok)
	}
	props, err := pack(result)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.InvokeResponse{Return: props}, nil
}

func (s *standIn) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}
