package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/mutation"
	"github.com/portcullis-dev/portcullis/webhook"
)

// Modes, the -mode flag: the endpoint under load.
const (
	modeAdmit  = "admit"
	modeMutate = "mutate"
)

// defaultMutationLibrary is the gatekeeper-library's mutation samples,
// beside its library directory.
func defaultMutationLibrary(library string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(library)), "mutation")
}

// loadMutators reads every mutator under dir into a mutation System, with
// Gatekeeper's iteration metric.
func loadMutators(dir string) (*mutation.System, int, error) {
	docs, err := manifest.ReadPath(dir, nil)
	if err != nil {
		return nil, 0, err
	}
	metrics, err := mutation.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return nil, 0, err
	}
	s := mutation.NewSystem(mutation.Options{Metrics: metrics})
	n := 0
	for _, d := range docs {
		if d.Object.GroupVersionKind().Group != mutationsv1.Group {
			continue
		}
		m, err := mutation.New(d.Object)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", d.Source, err)
		}
		if _, err := s.Upsert(m); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", d.Source, err)
		}
		n++
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("no mutator under %s", dir)
	}
	return s, n, nil
}

// registerMutate serves /v1/mutate with the mutators of dir, as the
// manager does.
func registerMutate(srv ctrlwebhook.Server, dir string, ns *corev1.Namespace, log logr.Logger) (int, error) {
	s, n, err := loadMutators(dir)
	if err != nil {
		return 0, err
	}
	metrics, err := webhook.NewMutationMetrics(ctrlmetrics.Registry)
	if err != nil {
		return 0, err
	}
	h := webhook.NewMutationHandler(s, webhook.HandlerOptions{
		Namespaces:     func(context.Context, string) (*corev1.Namespace, error) { return ns.DeepCopy(), nil },
		Namespace:      "portcullis-system",
		ServiceAccount: "system:serviceaccount:portcullis-system:portcullis-controller-manager",
		Timeout:        time.Duration(webhook.DefaultMutationTimeoutSeconds) * time.Second,
		Log:            log.WithName("webhook").WithName("mutate"),
	}, metrics)
	srv.Register(webhook.MutatePath, h)
	return n, nil
}

// checkMutated checks the first answer of /v1/mutate: allowed, with a
// JSON patch, which it prints.
func checkMutated(body []byte) error {
	var ar struct {
		Response struct {
			Allowed   bool   `json:"allowed"`
			Patch     []byte `json:"patch"`
			PatchType string `json:"patchType"`
		} `json:"response"`
	}
	if err := json.Unmarshal(body, &ar); err != nil {
		return err
	}
	if !ar.Response.Allowed || ar.Response.PatchType != "JSONPatch" || len(ar.Response.Patch) == 0 {
		return fmt.Errorf("first request not mutated: %s", body)
	}
	var ops []struct {
		Op   string `json:"op"`
		Path string `json:"path"`
	}
	if err := json.Unmarshal(ar.Response.Patch, &ops); err != nil {
		return err
	}
	paths := make([]string, len(ops))
	for i, o := range ops {
		paths[i] = o.Op + " " + o.Path
	}
	fmt.Printf("The Pod is mutated with a JSON patch of %d operations:\n  %s\n", len(ops), strings.Join(paths, "\n  "))
	return nil
}

// benchNamespace is the Namespace of the bench's Pods.
func benchNamespace() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"kubernetes.io/metadata.name": "default"}}}
}
