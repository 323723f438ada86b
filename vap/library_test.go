package vap_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/gklibrary"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/manager/managertest"
	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/vap"
	"github.com/portcullis-dev/portcullis/verify"
)

// libraryCase is one object of a library suite, judged with its test's
// constraint.
type libraryCase struct {
	key    string // template/test/case
	object *unstructured.Unstructured
}

// libraryRound is one test of a library suite: its constraint, with the
// objects of its cases, judged by that constraint alone.
type libraryRound struct {
	constraints []*unstructured.Unstructured
	cases       []libraryCase
}

// TestLibraryPolicies generates the policy of every gatekeeper-library
// template with CEL: each must be accepted by the API server. Then each
// object of their suites is created (dry run) through the API server
// twice, with the same constraints: first with the webhook registered
// and no policy generated, then with the policies and bindings generated
// and no webhook. The API server must give the same verdict both times.
func TestLibraryPolicies(t *testing.T) {
	needEnv(t)
	var templates []*unstructured.Unstructured
	var rounds []*libraryRound
	for _, p := range testenv.Library(t) {
		if !hasCEL(p.Template) {
			continue
		}
		templates = append(templates, p.Template)
		rounds = append(rounds, libraryTests(t, p.Files.Dir)...)
	}
	// The library's own count, read from its files rather than parsed,
	// so that a template hasCEL misses shows.
	if want := libraryCELTemplates(t); len(templates) != want || want == 0 {
		t.Errorf("%d library templates with CEL, want the %d whose template.yaml has a K8sNativeValidation code entry", len(templates), want)
	}
	var namespaces []string
	for _, r := range rounds {
		for _, c := range r.cases {
			if ns := c.object.GetNamespace(); ns != "" {
				namespaces = append(namespaces, ns)
			}
		}
	}
	testenv.EnsureNamespaces(t, env.Client, namespaces...)

	// The webhook's verdicts.
	wopts := managertest.Options("pod-library-webhook")
	wopts.Webhook.Enabled = true
	w, err := managertest.StartWebhook(env.Config, env.Client, wopts, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	managers.Add(1)
	for _, ct := range templates {
		objects.Create(t, ct)
	}
	webhook := judgeRounds(t, w.Manager.Manager, rounds, "pod-library-webhook", nil)
	managers.Add(-1)
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}

	// The API server's own, with the policies.
	m, _ := startManager(t, "pod-library-vap", func(o *manager.Options) { o.Webhook.Enabled = false })
	for _, ct := range templates {
		policyState(t, ct.GetName(), "pod-library-vap", vap.StateGenerated)
	}
	policies := judgeRounds(t, m.Manager, rounds, "pod-library-vap", webhook)
	// The manager deletes the policies with their templates.
	for _, ct := range templates {
		objects.Delete(t, ct)
		eventually(t, "the policy of "+ct.GetName()+" to go", func(ctx context.Context) error {
			return gone(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{}, vap.PolicyName(ct.GetName()))
		})
	}

	compared, denied := 0, 0
	keys := make([]string, 0, len(webhook))
	for k := range webhook {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if webhook[k] != policies[k] {
			t.Errorf("%s: the webhook says %s, the generated policies %s", k, webhook[k], policies[k])
		}
		if webhook[k] == verdictDenied || webhook[k] == verdictAllowed {
			compared++
		}
		if webhook[k] == verdictDenied {
			denied++
		}
	}
	t.Logf("%d templates; %d objects judged alike (%d denied, %d allowed), %d not creatable either way",
		len(templates), compared, denied, compared-denied, len(keys)-compared)
	if denied < 40 || compared-denied < 20 {
		t.Errorf("only %d objects denied and %d allowed: the comparison proves little", denied, compared-denied)
	}
}

// Verdicts of a dry-run create.
const (
	verdictAllowed = "allowed"
	verdictDenied  = "denied"
)

// judgeRounds applies each round's constraints, dry-runs the objects of
// its cases through the API server and records the verdicts; with want,
// it waits (a while) for each verdict to be want's, as a binding takes
// effect in the API server a moment after it is written.
func judgeRounds(t *testing.T, m *manager.Manager, rounds []*libraryRound, podID string, want map[string]string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for i, r := range rounds {
		for _, c := range r.constraints {
			testenv.Create(t, env.Client, c.DeepCopy(), waitTimeout)
		}
		for _, c := range r.constraints {
			testenv.WaitEnforced(t, testenv.Poll{Timeout: waitTimeout}, env.Client, c.GetKind(), c.GetName(), podID)
			if want != nil {
				bindingState(t, c.GetKind(), c.GetName(), podID, vap.StateGenerated)
			}
		}
		eventually(t, fmt.Sprintf("test %d: the engine to hold its %d constraints only", i, len(r.constraints)), func(context.Context) error {
			if _, n := m.Engine().Counts(); n != len(r.constraints) {
				return fmt.Errorf("%d constraints", n)
			}
			return nil
		})
		deadline := time.Now().Add(time.Minute)
		for _, c := range r.cases {
			v := dryRun(t, c.object)
			for want != nil && v != want[c.key] && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				v = dryRun(t, c.object)
			}
			got[c.key] = v
		}
		for _, c := range r.constraints {
			testenv.DeleteAndWait(t, env.Client, c, waitTimeout, false)
			if want != nil {
				eventually(t, "the binding of "+c.GetName()+" to go", func(ctx context.Context) error {
					return gone(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, vap.BindingName(c.GetKind(), c.GetName()))
				})
			}
		}
	}
	return got
}

// dryRun creates obj with dryRun=All and classifies the answer: allowed,
// denied (by the webhook or a policy), or the API server's own refusal.
func dryRun(t *testing.T, obj *unstructured.Unstructured) string {
	t.Helper()
	err := env.Client.Create(t.Context(), obj.DeepCopy(), client.DryRunAll)
	switch {
	case err == nil:
		return verdictAllowed
	case strings.Contains(err.Error(), `admission webhook "validation.gatekeeper.sh" denied the request`),
		strings.Contains(err.Error(), "ValidatingAdmissionPolicy 'gatekeeper-") && strings.Contains(err.Error(), "denied request"):
		return verdictDenied
	}
	var first string
	first, _, _ = strings.Cut(err.Error(), "\n")
	return "refused: " + first
}

// libraryTests reads the suite of a library template: each test's
// constraint and the objects of its cases (AdmissionReviews, which
// cannot be created, are left out).
func libraryTests(t *testing.T, dir string) []*libraryRound {
	t.Helper()
	suites, err := verify.FindSuites([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var out []*libraryRound
	for _, s := range suites {
		base := filepath.Dir(s.Path)
		for _, test := range s.Tests {
			if test.Skip || test.Invalid || test.Constraint == "" {
				continue
			}
			lt := &libraryRound{constraints: readObjects(t, filepath.Join(base, test.Constraint))}
			for _, c := range test.Cases {
				if c.Skip {
					continue
				}
				for i, o := range readObjects(t, filepath.Join(base, c.Object)) {
					if o.GetKind() == "AdmissionReview" {
						continue
					}
					if namespaced, err := env.Client.IsObjectNamespaced(o); err == nil && namespaced && o.GetNamespace() == "" {
						o.SetNamespace("default")
					}
					key := fmt.Sprintf("%s/%s/%s#%d", filepath.Base(dir), test.Name, c.Name, i)
					lt.cases = append(lt.cases, libraryCase{key: key, object: o})
				}
			}
			out = append(out, lt)
		}
	}
	return out
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	docs, err := manifest.ReadPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*unstructured.Unstructured, len(docs))
	for i, d := range docs {
		out[i] = d.Object
	}
	return out
}

// libraryCELTemplates counts the library's template.yaml files with a
// code entry of engine K8sNativeValidation, reading their text.
func libraryCELTemplates(t *testing.T) int {
	t.Helper()
	files, err := gklibrary.ListFiles(testenv.LibraryDir(t))
	if err != nil {
		t.Fatal(err)
	}
	engine := regexp.MustCompile(`(?m)^\s*-?\s*engine:\s*["']?K8sNativeValidation["']?\s*$`)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f.Template)
		if err != nil {
			t.Fatal(err)
		}
		if engine.Match(b) {
			n++
		}
	}
	return n
}

// hasCEL reports whether a template has K8sNativeValidation code.
func hasCEL(ct *unstructured.Unstructured) bool {
	targets, _, _ := unstructured.NestedSlice(ct.Object, "spec", "targets")
	for _, tg := range targets {
		m, _ := tg.(map[string]any)
		code, _ := m["code"].([]any)
		for _, c := range code {
			if cm, _ := c.(map[string]any); cm["engine"] == "K8sNativeValidation" {
				return true
			}
		}
	}
	return false
}
