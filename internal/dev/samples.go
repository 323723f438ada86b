package dev

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// applySamples applies templates/*/template.yaml, then every
// templates/*/samples/*/constraint.yaml (retrying each constraint until the
// controllers have created its kind), and waits at most bound until the
// manager enforces every constraint applied, by their status. No dry run
// of any object is involved, so no policy of the user can hold it up.
func (r *run) applySamples(ctx context.Context, cfg *rest.Config, dir string, bound time.Duration) error {
	templates, err := filepath.Glob(filepath.Join(dir, "*", "template.yaml"))
	if err != nil {
		return err
	}
	if len(templates) == 0 {
		return fmt.Errorf("no %s/*/template.yaml found (run from the repository, or pass --templates)", dir)
	}
	constraints, err := filepath.Glob(filepath.Join(dir, "*", "samples", "*", "constraint.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(templates)
	sort.Strings(constraints)
	fmt.Fprintf(r.stderr, "portcullis dev: applying %d templates of %s and %d sample constraints\n", len(templates), dir, len(constraints))
	newClient := func() (client.Client, error) { return client.New(cfg, client.Options{}) }
	c, err := newClient()
	if err != nil {
		return fmt.Errorf("creating a client of the API server: %w", err)
	}
	var applied []*unstructured.Unstructured
	apply := func(path string, retry bool) error {
		docs, err := manifest.ReadPath(path, nil)
		if err != nil {
			return err
		}
		for _, d := range docs {
			obj := d.Object.DeepCopy()
			err := waitFor(ctx, r.stderr, fmt.Sprintf("%s %s to be accepted", obj.GetKind(), obj.GetName()), bound, 250*time.Millisecond,
				func(ctx context.Context) (bool, string, error) {
					err := c.Patch(ctx, obj, client.Apply, client.FieldOwner("portcullis-dev"), client.ForceOwnership) //nolint:staticcheck // client.Apply with Patch is deprecated for typed Apply configurations; the samples are unstructured
					if err == nil {
						return true, "", nil
					}
					if retry && (meta.IsNoMatchError(err) || apierrors.IsNotFound(err)) {
						if nc, cerr := newClient(); cerr == nil {
							c = nc
						}
						return false, "its kind is not served yet", nil
					}
					return false, "", err
				})
			if err != nil {
				return fmt.Errorf("applying %s: %w", path, err)
			}
			applied = append(applied, obj)
		}
		return nil
	}
	for _, p := range templates {
		if err := apply(p, false); err != nil {
			return err
		}
	}
	var samples []*unstructured.Unstructured
	for _, p := range constraints {
		before := len(applied)
		if err := apply(p, true); err != nil {
			return err
		}
		samples = append(samples, applied[before:]...)
	}
	return waitFor(ctx, r.stderr, "the sample constraints to be enforced", bound, 250*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		var pending []string
		for _, s := range samples {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(s.GroupVersionKind())
			if err := c.Get(ctx, client.ObjectKeyFromObject(s), u); err != nil {
				pending = append(pending, fmt.Sprintf("%s (%v)", s.GetName(), err))
				continue
			}
			if !enforced(u) {
				pending = append(pending, s.GetName())
			}
		}
		if len(pending) == 0 {
			return true, "", nil
		}
		return false, fmt.Sprintf("%d of %d not enforced yet: %s", len(pending), len(samples), strings.Join(pending, ", ")), nil
	})
}

// enforced reports whether a constraint's status.byPod entry of the dev
// manager says enforced, for its current generation.
func enforced(u *unstructured.Unstructured) bool {
	byPod, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
	for _, e := range byPod {
		m, ok := e.(map[string]any)
		if !ok || m["id"] != PodID {
			continue
		}
		gen, _, _ := unstructured.NestedInt64(m, "observedGeneration")
		ok, _, _ = unstructured.NestedBool(m, "enforced")
		return ok && gen == u.GetGeneration()
	}
	return false
}
