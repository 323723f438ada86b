package expansion

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// Fixtures shared by the tests: Gatekeeper's example templates (its
// expansion documentation and test/expansion), written anew.

const expandDeployments = `
apiVersion: expansion.gatekeeper.sh/v1alpha1
kind: ExpansionTemplate
metadata:
  name: expand-deployments
spec:
  applyTo:
  - groups: ["apps"]
    kinds: ["Deployment", "ReplicaSet"]
    versions: ["v1"]
  templateSource: spec.template
  generatedGVK: {group: "", version: v1, kind: Pod}
`

const expandCronJobs = `
apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata:
  name: expand-cronjobs
spec:
  applyTo:
  - groups: [batch]
    kinds: [CronJob]
    versions: [v1]
  templateSource: spec.jobTemplate
  generatedGVK: {group: batch, version: v1, kind: Job}
`

const expandJobs = `
apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata:
  name: expand-jobs
spec:
  applyTo:
  - groups: [batch]
    kinds: [Job]
    versions: [v1]
  templateSource: spec.template
  generatedGVK: {group: "", version: v1, kind: Pod}
`

// expandPods closes the cycle CronJob -> Job -> Pod -> CronJob.
const expandPods = `
apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata:
  name: expand-pods
spec:
  applyTo:
  - groups: [""]
    kinds: [Pod]
    versions: [v1]
  templateSource: spec.foo
  generatedGVK: {group: batch, version: v1, kind: CronJob}
`

const deployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: Nginx-Deployment
  namespace: web
  labels: {app: nginx}
spec:
  replicas: 3
  template:
    metadata:
      labels: {app: nginx}
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
`

const cronJob = `
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  namespace: jobs
spec:
  schedule: "@daily"
  jobTemplate:
    metadata:
      labels: {job: nightly}
    spec:
      template:
        metadata:
          labels: {pod: nightly}
        spec:
          containers:
          - name: run
            image: busybox
`

// parse reads one YAML object.
func parse(t testing.TB, y string) *unstructured.Unstructured {
	t.Helper()
	docs, err := manifest.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%d documents, want 1", len(docs))
	}
	return docs[0].Object
}

// template parses an ExpansionTemplate.
func template(t testing.TB, y string) *Template {
	t.Helper()
	tm, err := FromUnstructured(parse(t, y))
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// system holds the templates given, which must all load.
func system(t testing.TB, m Mutator, ys ...string) *System {
	t.Helper()
	s := NewSystem(m)
	for _, y := range ys {
		if err := s.Upsert(template(t, y)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}
