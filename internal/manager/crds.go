package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/controllers"
)

// crdEstablishTimeout bounds the wait for all the installed CRDs to be
// served. An API server on a loaded machine may take over a minute for the
// mutators' large schemas.
const crdEstablishTimeout = 3 * time.Minute

// InstallCRDs applies the CustomResourceDefinitions in manifests (YAML
// documents) with server-side apply, which changes nothing when they are up
// to date, then waits until each is Established.
func InstallCRDs(ctx context.Context, c client.Client, manifests []byte) error {
	var names []string
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("reading the embedded CRDs: %w", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if u.GetKind() != "CustomResourceDefinition" {
			return fmt.Errorf("embedded CRDs: %s %q is not a CustomResourceDefinition", u.GetKind(), u.GetName())
		}
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(controllers.FieldManager), client.ForceOwnership)
		if err != nil {
			return fmt.Errorf("applying CRD %s: %w", u.GetName(), err)
		}
		names = append(names, u.GetName())
	}
	// One List a poll for all of them: a Get per CRD every 100 ms would
	// spend the client's rate limit that the starting controllers need.
	pending := sets.New(names...)
	var listErr error
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, crdEstablishTimeout, true, func(ctx context.Context) (bool, error) {
		list := &apiextensionsv1.CustomResourceDefinitionList{}
		if listErr = c.List(ctx, list); listErr != nil {
			return false, nil // retried until the bound, then reported
		}
		for i := range list.Items {
			if apihelpers.IsCRDConditionTrue(&list.Items[i], apiextensionsv1.Established) {
				pending.Delete(list.Items[i].Name)
			}
		}
		return pending.Len() == 0, nil
	})
	if err != nil {
		if listErr != nil {
			err = fmt.Errorf("%w (last error listing CRDs: %w)", err, listErr)
		}
		return fmt.Errorf("waiting for CRDs %s to be established: %w", strings.Join(sets.List(pending), ", "), err)
	}
	return nil
}
