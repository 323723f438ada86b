package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// devSamples applies the template library and its sample constraints, and
// waits until the webhook enforces them.
func devSamples(ctx context.Context, cfg *rest.Config, c client.Client, dir string, stderr io.Writer) error {
	fmt.Fprintf(stderr, "portcullis dev: applying %s and its sample constraints\n", dir)
	if err := devApplyLibrary(ctx, cfg, dir, stderr); err != nil {
		return err
	}
	return devWaitEnforced(ctx, c)
}

// devApplyLibrary applies templates/*/template.yaml, then every
// templates/*/samples/*/constraint.yaml, retrying each constraint until the
// controllers have created its kind.
func devApplyLibrary(ctx context.Context, cfg *rest.Config, dir string, stderr io.Writer) error {
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
	newClient := func() (client.Client, error) { return client.New(cfg, client.Options{}) }
	c, err := newClient()
	if err != nil {
		return err
	}
	apply := func(path string, retry bool) error {
		docs, err := manifest.ReadPath(path, nil)
		if err != nil {
			return err
		}
		for _, d := range docs {
			obj := d.Object.DeepCopy()
			err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
				err := c.Patch(ctx, obj, client.Apply, client.FieldOwner("portcullis-dev"), client.ForceOwnership) //nolint:staticcheck // client.Apply with Patch is deprecated for typed Apply configurations; the samples are unstructured
				if err == nil {
					return true, nil
				}
				if retry && (meta.IsNoMatchError(err) || apierrors.IsNotFound(err)) {
					if nc, cerr := newClient(); cerr == nil {
						c = nc
					}
					return false, nil
				}
				return false, err
			})
			if err != nil {
				return fmt.Errorf("applying %s (%s %s): %w", path, obj.GetKind(), obj.GetName(), err)
			}
		}
		return nil
	}
	for _, p := range templates {
		if err := apply(p, false); err != nil {
			return err
		}
	}
	for _, p := range constraints {
		if err := apply(p, true); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "portcullis dev: applied %d templates and %d sample constraints\n", len(templates), len(constraints))
	return nil
}

// devWaitEnforced waits until the webhook refuses the namespace of the
// refused command and admits the one of the admitted command (server-side
// dry runs, nothing is stored).
func devWaitEnforced(ctx context.Context, c client.Client) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		bad := &corev1.Namespace{}
		bad.Name = devRefusedNamespace
		err := c.Create(ctx, bad, client.DryRunAll)
		if err == nil {
			last = fmt.Errorf("%s is not refused yet (admitted)", devRefusedNamespace)
			return false, nil
		}
		if !strings.Contains(err.Error(), "denied") {
			last = fmt.Errorf("%s is not refused yet (%w)", devRefusedNamespace, err)
			return false, nil
		}
		good := &corev1.Namespace{}
		good.Name = devAdmittedNamespace
		good.Labels = map[string]string{"owner": "demo.team", "test": "true"}
		if err := c.Create(ctx, good, client.DryRunAll); err != nil && !apierrors.IsAlreadyExists(err) {
			last = fmt.Errorf("%s is not admitted: %w", devAdmittedNamespace, err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the sample constraints to be enforced: %w (last: %w)", err, last)
	}
	return nil
}
