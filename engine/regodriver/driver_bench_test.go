package regodriver_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	fwrego "github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/engine/regodriver"
)

// benchPod violates several of the library's pod policies.
const benchPod = `apiVersion: v1
kind: Pod
metadata:
  name: bench
  namespace: default
  labels:
    app: bench
spec:
  hostNetwork: true
  containers:
  - name: app
    image: nginx:latest
    securityContext:
      privileged: true
    resources:
      limits: {cpu: "2", memory: 2Gi}
  - name: sidecar
    image: openpolicyagent/opa:0.9.2
    ports:
    - containerPort: 80
      hostPort: 8080
  initContainers:
  - name: init
    image: busybox
`

// benchTemplates are the few library templates BenchmarkReview uses.
var benchTemplates = []string{
	"general/allowedrepos",
	"general/containerlimits",
	"general/requiredlabels",
	"general/disallowedtags",
	"pod-security-policy/privileged-containers",
	"pod-security-policy/host-namespaces",
	"pod-security-policy/host-network-ports",
	"pod-security-policy/capabilities",
}

func benchObject(b *testing.B) *unstructured.Unstructured {
	b.Helper()
	return parseYAML(b, "benchPod", benchPod)[0]
}

// benchEngine builds an engine with the library templates whose directory
// ends with one of dirs (all of them if dirs is nil), each with its first
// sample constraint.
func benchEngine(b *testing.B, dirs []string) *engine.Engine {
	b.Helper()
	lib := loadLibrary(b)
	ctx := context.Background()
	e, err := engine.New(engine.Options{EnforcementPoints: []string{engine.EnforcementPointGator}})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, ct := range lib.templates {
		kind := ct.Spec.CRD.Spec.Names.Kind
		var first *unstructured.Unstructured
		for _, c := range lib.first {
			if c.GetKind() == kind {
				first = c
				break
			}
		}
		if first == nil || (dirs != nil && !wanted(lib, ct.Name, dirs)) {
			continue
		}
		if err := e.AddTemplate(ctx, ct); err != nil {
			b.Fatalf("AddTemplate %s: %v", ct.Name, err)
		}
		if err := e.AddConstraint(ctx, first); err != nil {
			b.Fatalf("AddConstraint %s: %v", first.GetName(), err)
		}
		n++
	}
	if dirs != nil && n != len(dirs) {
		b.Fatalf("found %d of the %d benchmark templates", n, len(dirs))
	}
	return e
}

// wanted reports whether the template named name lives in one of dirs.
func wanted(lib *library, name string, dirs []string) bool {
	for i, ct := range lib.templates {
		if ct.Name != name {
			continue
		}
		if slices.Contains(dirs, lib.dirs[i]) {
			return true
		}
	}
	return false
}

func benchmarkReview(b *testing.B, dirs []string, inputs []engine.ReviewInput) {
	e := benchEngine(b, dirs)
	ctx := context.Background()
	violations := 0
	for _, in := range inputs {
		resp, err := e.Review(ctx, in, engine.EnforcementPointGator)
		if err != nil {
			b.Fatal(err)
		}
		violations += len(resp.Violations)
	}
	if violations == 0 {
		b.Fatal("no violations at all")
	}
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			in := inputs[int(next.Add(1)-1)%len(inputs)]
			if _, err := e.Review(ctx, in, engine.EnforcementPointGator); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkReview reviews a Pod against a few library templates, through
// the engine and the frameworks client. Run with -cpu 1 for one review at
// a time.
func BenchmarkReview(b *testing.B) {
	benchmarkReview(b, benchTemplates, []engine.ReviewInput{&engine.Object{Object: benchObject(b)}})
}

// BenchmarkReviewLibrary reviews each library sample object in turn (one
// review per op) against every library template with its first sample
// constraint, as portcullis bench does on hack/library-bench-args.sh.
func BenchmarkReviewLibrary(b *testing.B) {
	lib := loadLibrary(b)
	inputs := make([]engine.ReviewInput, 0, len(lib.objects))
	for _, u := range lib.objects {
		if u.GetKind() != "AdmissionReview" {
			inputs = append(inputs, &engine.Object{Object: u, Source: engine.SourceOriginal})
			continue
		}
		var ar admissionv1.AdmissionReview
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ar); err != nil || ar.Request == nil {
			b.Fatalf("%s: not an AdmissionReview: %v", u.GetName(), err)
		}
		inputs = append(inputs, &engine.Admission{Request: ar.Request, Source: engine.SourceOriginal})
	}
	benchmarkReview(b, nil, inputs)
}

// BenchmarkQuery compares this driver (result cache off, so that every
// Query evaluates) with the frameworks driver on the same Query: the
// benchmark Pod against the benchmark templates.
func BenchmarkQuery(b *testing.B) {
	compareDrivers(b, reviewOf(benchObject(b)), benchTemplates)
}

// BenchmarkQueryLibrary compares the drivers on the Query `make
// bench-webhook` makes: its Pod against every library template with its
// first sample constraint, all evaluated (no matching). Run with -cpu 1
// for one core's work.
func BenchmarkQueryLibrary(b *testing.B) {
	raw, err := os.ReadFile("../../hack/bench-webhook/pod.json")
	if err != nil {
		b.Fatal(err)
	}
	pod := strings.NewReplacer("@@SUFFIX@@", "x8k2q", "@@OBJUID@@", "1b4e28ba", "@@TAG@@", "latest", "@@SLEEP@@", "3600").Replace(string(raw))
	var obj map[string]any
	if err := json.Unmarshal([]byte(pod), &obj); err != nil {
		b.Fatal(err)
	}
	compareDrivers(b, reviewOf(&unstructured.Unstructured{Object: obj}), nil)
}

// compareDrivers queries review with this driver (result cache off) and
// the frameworks driver, each holding the library templates whose
// directory is one of dirs (all of them if nil) with their first sample
// constraint.
func compareDrivers(b *testing.B, review any, dirs []string) {
	lib := loadLibrary(b)
	ctx := context.Background()
	ours := newDriver(b, regodriver.CacheSize(0))
	theirs, err := fwrego.New()
	if err != nil {
		b.Fatal(err)
	}
	var cs []*unstructured.Unstructured
	for _, ct := range lib.templates {
		if dirs != nil && !wanted(lib, ct.Name, dirs) {
			continue
		}
		for _, c := range lib.first {
			if c.GetKind() == ct.Spec.CRD.Spec.Names.Kind {
				for _, d := range []drivers.Driver{ours, theirs} {
					mustAdd(b, d, ct, c)
				}
				cs = append(cs, c)
			}
		}
	}
	for _, d := range []drivers.Driver{ours, theirs} {
		name := "regodriver"
		if d == drivers.Driver(theirs) {
			name = "frameworks"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := d.Query(ctx, engine.TargetName, cs, review); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
